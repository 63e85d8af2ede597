"""The M1 network: a timm backbone with one linear head per mesh (timm's model contract)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from trigeo.errors import InputError
from trigeo.models.registry import register_model

__all__ = ["M1Net", "check_backbone", "resolve_image_config"]


def check_backbone(name: str) -> None:
    """Raise an ``InputError`` suggesting close timm names if ``name`` is unknown."""
    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
    raise InputError(f"unknown timm backbone {name!r}{hint}", column="backbone")


@register_model("m1")
class M1Net(nn.Module):
    """A timm backbone (classifier removed) followed by one linear head per mesh.

    Parameters
    ----------
    backbone
        Any timm model name (``inception_v4`` for real photos, ``resnet10t``
        or ``test_resnet`` for small demos).
    num_classes
        K, the number of kept mesh cells; a sequence of K's gives one head
        per mesh on the shared backbone.
    pretrained
        Let timm fetch pretrained weights. Off by default: nothing is
        downloaded at run time; use :func:`load_backbone_weights` with a local file.
    drop_rate
        Dropout before the head (timm's ``drop_rate``).
    head_names
        One short name per head (default ``head0``, ``head1``, ...).
    primary
        Index of the head that ``forward`` and ``classify`` answer with
        (default: the one with the most cells, the finest mesh).

    Notes
    -----
    A single-head network keeps its layer at ``head`` (the layout of every
    M1 saved before multi-head training); several heads live in ``heads``.
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int | Sequence[int],
        *,
        pretrained: bool = False,
        drop_rate: float = 0.0,
        head_names: Sequence[str] | None = None,
        primary: int | None = None,
    ) -> None:
        super().__init__()
        import timm

        check_backbone(backbone)
        sizes = (
            (int(num_classes),)
            if isinstance(num_classes, (int, np.integer))
            else tuple(int(k) for k in num_classes)
        )
        if not sizes or min(sizes) < 1:
            raise InputError(f"num_classes must be >= 1 per head, got {list(sizes)}")
        names = (
            tuple(head_names)
            if head_names is not None
            else tuple(f"head{i}" for i in range(len(sizes)))
        )
        if len(names) != len(sizes) or len(set(names)) != len(names):
            raise InputError(f"need {len(sizes)} distinct head names, got {list(names)}")
        self.backbone_name = backbone
        self.head_sizes = sizes
        self.head_names = names
        self.primary = int(np.argmax(sizes)) if primary is None else int(primary)
        if not 0 <= self.primary < len(sizes):
            raise InputError(f"primary head {self.primary} outside 0..{len(sizes) - 1}")
        self.num_classes = sizes[self.primary]
        # num_classes=0 makes timm return pooled pre-logit features.
        self.backbone = timm.create_model(
            backbone, pretrained=pretrained, num_classes=0, drop_rate=drop_rate
        )
        self.num_features = int(self.backbone.num_features)
        if len(sizes) == 1:
            self.head = nn.Linear(self.num_features, sizes[0])
        else:
            self.heads = nn.ModuleList(nn.Linear(self.num_features, k) for k in sizes)

    @property
    def n_heads(self) -> int:
        return len(self.head_sizes)

    def _layers(self) -> list[nn.Module]:
        return [self.head] if self.n_heads == 1 else list(self.heads)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's unpooled feature map (timm's contract), e.g. ``(B, C, H, W)``."""
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a feature map and classify it (timm's contract).

        Parameters
        ----------
        x
            Output of :meth:`forward_features`.
        pre_logits
            Return the pooled features ``(B, num_features)`` instead of the
            logits over the K cells.
        """
        # The backbone was built with num_classes=0, so its own head stops at pooling
        # (and its drop_rate dropout).
        pooled = self.backbone.forward_head(x, pre_logits=True)
        return pooled if pre_logits else self.classify(pooled)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """The primary head's logits from pooled features (cached-feature training)."""
        return self._layers()[self.primary](pooled)

    def classify_heads(self, pooled: torch.Tensor) -> list[torch.Tensor]:
        """Every head's logits from the same pooled features, in head order."""
        return [layer(pooled) for layer in self._layers()]

    def forward_heads(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every head's logits from images: one backbone pass serves every mesh."""
        return self.classify_heads(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features ``(B, num_features)`` (retrieval descriptors)."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def freeze_backbone(self) -> None:
        """Stop gradients into the backbone (the head stays trainable)."""
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)


def resolve_image_config(backbone: nn.Module, image_size: int | None = None) -> dict[str, Any]:
    """The backbone's timm data config, optionally at a square ``image_size``.

    Returns a JSON-serializable dict (tuples become lists) with ``input_size``,
    ``interpolation``, ``mean``, ``std``, ``crop_pct`` and ``crop_mode``.
    """
    from timm.data import resolve_data_config

    args: dict[str, Any] = {}
    if image_size is not None:
        args["input_size"] = (3, int(image_size), int(image_size))
    config = resolve_data_config(args, model=backbone)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
