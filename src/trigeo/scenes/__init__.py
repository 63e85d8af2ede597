"""Scene classification: P(outdoor) per photo from a Places365 CNN (``trigeo scenes``).

Fills a dataset's ``outdoor`` column so ``trigeo evaluate --outdoor-only``
works on imported datasets, not only the synthetic world. Torch is imported
inside the functions that need it.
"""
