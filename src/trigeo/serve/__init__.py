"""``trigeo serve``: an HTTP API and an offline web map of where a photo was taken.

* :mod:`trigeo.serve.engine`: the reported answer (top-k, credible regions,
  GeoJSON, EXIF truth, neighbours); re-exports the backends.
* :mod:`trigeo.serve.backends`: model backends (M1; M2 with a posting time),
  ``load_backend`` and ``register_backend``.
* :mod:`trigeo.serve.report`: the JSON records of one photo's answer.
* :mod:`trigeo.serve.neighbours`: the index search, ``refine``/``knn`` answers and
  the nearest indexed photos.
* :mod:`trigeo.serve.coarsen`: ``--coarsen-km``, the responsible-use setting.
* :mod:`trigeo.serve.limits`: in-memory upload parsing, 413/415/422, and
  admission with a bounded queue of requests (503 + ``Retry-After``).
* :mod:`trigeo.serve.batching`: dynamic batching, photos of concurrent requests
  answered by one forward pass (``--batch-size``, ``--batch-wait-ms``).
* :mod:`trigeo.serve.hosts`: the ``Host`` check against DNS rebinding
  (``--allowed-host``).
* :mod:`trigeo.serve.app`: the FastAPI app; ``static/index.html`` the page.
* :mod:`trigeo.serve.run`: loading and starting the server (defaults, threads).
* :mod:`trigeo.serve.cli`: ``trigeo serve``.

Imports predict, retrieve, mesh and calibration; nothing imports serve.
"""
