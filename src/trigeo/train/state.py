"""The run-state file every trainer checks before it writes: no silent overwrite or mix-up.

A model directory holds ``train_state.json`` (the inputs that define the run)
and ``config.yaml``. A second run into the same directory needs ``--resume``,
and a resumed run must have the same inputs as the interrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trigeo.errors import InputError
from trigeo.provenance import write_json_atomic

__all__ = ["CONFIG_FILE", "STATE_FILE", "check_run_state"]

STATE_FILE = "train_state.json"
CONFIG_FILE = "config.yaml"


def check_run_state(out: Path, state: dict[str, Any], config: dict[str, Any], resume: bool) -> None:
    """Record a new run's state in ``out``, or check a resumed run against it.

    Parameters
    ----------
    out
        The model directory (created for a new run).
    state
        What must not change between an interrupted run and its resumption
        (dataset and mesh hashes, seed, ...).
    config
        The run's config as a plain dict, written to ``config.yaml``.

    Raises
    ------
    InputError
        ``out`` holds a run and ``resume`` is false, or a key of ``state``
        differs from the interrupted run's (named, with both values).

    Notes
    -----
    Only the launching process (rank 0) checks and writes. Lightning's DDP
    launcher re-runs the command in each further rank after rank 0 has
    written the state, and those ranks would otherwise find "a run already
    here" and stop.
    """
    import yaml

    from trigeo.runtime.devices import launch_rank

    if launch_rank() != 0:
        return

    path = out / STATE_FILE
    if path.exists():
        previous = json.loads(path.read_text("utf-8"))
        if not resume:
            raise InputError(
                f"{out} already holds a training run; pass --resume to continue it or choose "
                "another --out"
            )
        changed = [k for k in state if previous.get(k) != state[k]]
        if changed:
            raise InputError(
                f"cannot resume: {', '.join(changed)} differ from the interrupted run "
                f"({', '.join(f'{k}={previous.get(k)!r}' for k in changed)})",
                source=path,
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, state)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
