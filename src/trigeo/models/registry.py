"""A timm-style model registry: ``register_model`` and ``create_model``.

Each model family lives in its own module (``trigeo.models.m1``, ...) and
registers a constructor under a short name. ``create_model(name, **kwargs)``
builds a pure ``torch.nn.Module``; training and prediction wrap it elsewhere.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any

from trigeo.errors import InputError

__all__ = ["create_model", "list_models", "register_model"]

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
