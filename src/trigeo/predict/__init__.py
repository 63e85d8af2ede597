"""Batched inference with trained models into predictions files.

Needs torch; the predictions format itself lives in ``trigeo.predictions``.
"""
