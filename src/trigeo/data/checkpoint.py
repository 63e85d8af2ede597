"""Import checkpoints: resume an interrupted import where it stopped.

The importers (``data yfcc``, ``data csv``, ``data shard``) write their output
in parts and, after each part, a JSON checkpoint naming the parts done and the
run's *signature*: the input (path, size, modification time) and every option
that changes the output. :func:`load_checkpoint` is the one place that decides
whether a checkpoint found on disk may be resumed.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["load_checkpoint"]


def load_checkpoint(
    path: Path,
    signature: dict[str, Any],
    fresh: dict[str, Any],
    parts_dir: Path | None = None,
) -> dict[str, Any]:
    """The checkpoint of an interrupted run of the same input and options, or a fresh one.

    Parameters
    ----------
    path
        The checkpoint file (JSON with a ``"signature"`` and the importer's own keys).
    signature
        This run's signature; a checkpoint is resumed only when its own is equal.
    fresh
        The state of a run from the start (copied, never modified).
    parts_dir
        Where the checkpoint's ``"parts"`` are. A checkpoint is resumed only when
        every part it names still exists; otherwise this folder and the stale
        checkpoint are removed, so nothing of another run is joined by mistake.

    Returns
    -------
    dict
        The saved state, or a copy of ``fresh``; either way ``"signature"`` is
        this run's.
    """
    if path.exists():
        try:
            state = json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            state = {}  # an unreadable checkpoint is the same as none
        parts_ok = parts_dir is None or all(
            (parts_dir / name).exists() for name in state.get("parts", [])
        )
        if isinstance(state, dict) and state.get("signature") == signature and parts_ok:
            return state
    if parts_dir is not None:
        shutil.rmtree(parts_dir, ignore_errors=True)
    path.unlink(missing_ok=True)
    return {**copy.deepcopy(fresh), "signature": signature}
