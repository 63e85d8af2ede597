"""trigeo: where in the world was this photo taken?

Photo geolocation as classification over the cells of an adaptive spherical
Delaunay mesh, after Müller-Budack-style mesh classifiers and the 2018 YFCC100M
study of time and album context (see ``docs/architecture.md``).

The top-level namespace is deliberately small and torch-free; heavy stages
(``trigeo.models``, ``trigeo.train``, ``trigeo.predict``, ``trigeo.serve``)
are imported explicitly.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
