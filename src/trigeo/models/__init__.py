"""Model definitions: pure ``torch.nn.Module``s behind a timm-style registry.

>>> from trigeo.models import create_model  # doctest: +SKIP
>>> net = create_model("m1", backbone="resnet10t", num_classes=538)  # doctest: +SKIP

Families: ``m1`` (CNN over mesh cells, :mod:`trigeo.models.m1`), ``m2`` (M1's
top-10 plus the posting time, :mod:`trigeo.models.m2`), ``m3`` (a bidirectional
LSTM over user albums, :mod:`trigeo.models.m3`). ``load_model_dir(path)`` loads
any of their model directories by the format in its ``model.json``.
"""

from trigeo.models.m1 import M1Model, M1Net, load_backbone_weights
from trigeo.models.m2 import M2Model, M2Net, m2_inputs, time_features
from trigeo.models.m3 import M3Model, M3Net, make_albums, pad_albums
from trigeo.models.registry import create_model, list_models, load_model_dir, register_model

__all__ = [
    "M1Model",
    "M1Net",
    "M2Model",
    "M2Net",
    "M3Model",
    "M3Net",
    "create_model",
    "list_models",
    "load_backbone_weights",
    "load_model_dir",
    "m2_inputs",
    "make_albums",
    "pad_albums",
    "register_model",
    "time_features",
]
