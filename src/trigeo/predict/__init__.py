"""Batched inference with trained models into predictions files (torch; see ``trigeo.predictions``)."""
