"""Model definitions: pure ``torch.nn.Module``s behind a timm-style registry.

>>> from trigeo.models import create_model  # doctest: +SKIP
>>> net = create_model("m1", backbone="resnet10t", num_classes=538)  # doctest: +SKIP

Families: ``m1`` (CNN over mesh cells, :mod:`trigeo.models.m1`).
"""

from trigeo.models.m1 import M1Model, M1Net, load_backbone_weights, load_model
from trigeo.models.registry import create_model, list_models, register_model

__all__ = [
    "M1Model",
    "M1Net",
    "create_model",
    "list_models",
    "load_backbone_weights",
    "load_model",
    "register_model",
]
