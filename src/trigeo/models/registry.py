"""A timm-style model registry: ``register_model`` and ``create_model``.

Each model family lives in its own module (``trigeo.models.m1``, ...) and
registers a constructor under a short name. ``create_model(name, **kwargs)``
builds a pure ``torch.nn.Module``; training and prediction wrap it elsewhere.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trigeo.errors import ArtifactError, InputError

__all__ = ["MODEL_DIR_FORMATS", "create_model", "list_models", "load_model_dir", "register_model"]

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a model constructor under ``name``."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(name for name in _REGISTRY if fnmatch.fnmatch(name, pattern))


def create_model(name: str, **kwargs: Any) -> Any:
    """Build the registered model ``name`` with constructor keyword arguments.

    Raises
    ------
    InputError
        If ``name`` is not registered (close names are suggested).
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"unknown model {name!r}{hint} (registered: {list_models()})") from None
    return factory(**kwargs)


#: ``model.json`` format -> (module, class) of the model directory artifact.
MODEL_DIR_FORMATS: dict[str, tuple[str, str]] = {
    "trigeo-m1/1": ("trigeo.models.m1", "M1Model"),
    "trigeo-m2/1": ("trigeo.models.m2", "M2Model"),
    "trigeo-m3/1": ("trigeo.models.m3", "M3Model"),
    "trigeo-m3/2": ("trigeo.models.m3", "M3Model"),
}


def model_dir_format(root: str | Path) -> str:
    """The ``format`` recorded in a model directory's ``model.json``.

    Raises
    ------
    ArtifactError
        No ``model.json``, corrupt JSON, or a format trigeo does not know.
    """
    path = Path(root) / "model.json"
    if not path.exists():
        raise ArtifactError(f"{root}: no model.json; is this a trigeo model directory?")
    try:
        fmt = json.loads(path.read_text("utf-8")).get("format")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ArtifactError(f"{path}: corrupt model.json ({exc})") from exc
    if fmt not in MODEL_DIR_FORMATS:
        raise ArtifactError(
            f"{path}: unknown model format {fmt!r} (known: {', '.join(MODEL_DIR_FORMATS)})"
        )
    return str(fmt)


def load_model_dir(root: str | Path, map_location: Any = "cpu") -> Any:
    """Load any trigeo model directory (M1, M2 or M3), dispatching on its format.

    Returns
    -------
    M1Model, M2Model or M3Model
    """
    import importlib

    module, name = MODEL_DIR_FORMATS[model_dir_format(root)]
    return getattr(importlib.import_module(module), name).load(root, map_location=map_location)
