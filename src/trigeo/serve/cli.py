"""``trigeo serve`` (placeholder until the server lands)."""

from __future__ import annotations


def serve() -> None:
    """Serve a model over HTTP."""
