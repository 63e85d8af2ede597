"""Loading local backbone weights (timm checkpoints, safetensors, trigeo M1 files) into M1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trigeo.errors import InputError

__all__ = ["load_backbone_weights"]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise InputError("weights file not found", source=path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a bad file
        raise InputError(f"cannot read weights ({type(exc).__name__}: {exc})", source=path) from exc
    for wrapper in ("state_dict", "model", "state_dict_ema", "model_ema"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError("not a state dict of tensors", source=path)
    return dict(state)


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load local ImageNet weights (timm checkpoint or safetensors) into a backbone.

    The ImageNet classifier is dropped (M1 has its own head); prefixes such as
    ``module.`` (DDP) or ``backbone.`` (a trigeo M1 file) are stripped.

    Returns
    -------
    dict
        ``loaded`` (count), ``missing`` and ``unexpected`` key lists, ``dropped``
        (classifier keys left out).

    Raises
    ------
    InputError
        If the file cannot be read, a tensor's shape does not fit the backbone,
        or no key matches at all (weights of another architecture).
    """
    path = Path(path)
    state = _read_state_dict(path)
    for prefix in ("module.", "backbone.", "model."):
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    if state and all(k.startswith(("backbone.", "head.", "heads.")) for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    classifier = getattr(backbone, "pretrained_cfg", {}).get("classifier") or "fc"
    classifiers = [classifier] if isinstance(classifier, str) else list(classifier)
    own = backbone.state_dict()
    dropped = [k for k in state if k not in own and any(k.startswith(c + ".") for c in classifiers)]
    state = {k: v for k, v in state.items() if k not in dropped}
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        more = f" (+{len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
        raise InputError(
            f"weights do not fit backbone {type(backbone).__name__}: {'; '.join(mismatched[:3])}"
            f"{more}",
            source=path,
        )
    matched = [k for k in state if k in own]
    if not matched:
        raise InputError(
            f"no tensor name matches backbone {type(backbone).__name__} "
            f"(file has e.g. {list(state)[:3]}, model has e.g. {list(own)[:3]}); "
            "are these weights for another architecture?",
            source=path,
        )
    result = backbone.load_state_dict(state, strict=False)
    return {
        "loaded": len(matched),
        "missing": list(result.missing_keys),
        "unexpected": list(result.unexpected_keys),
        "dropped": dropped,
    }
