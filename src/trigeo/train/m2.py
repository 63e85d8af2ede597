"""Train M2: M1's top-10 cells plus the posting time -> a cell.

``train_m2`` prepares the heads photos (:func:`~trigeo.train.heads_data.prepare_heads`:
overlap, M1 predictions, times, labels), builds M2's inputs with the shared
:func:`trigeo.models.m2.m2_inputs`, re-splits the photos at random (seeded)
into a fit part and an early-stopping part, runs the Adam stages
(:func:`~trigeo.train.heads_module.fit_head_stages`) and saves the model
directory (format ``trigeo-m2/1``). M1 is never run during training: its top
cells come from a predictions file, made once when missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trigeo.provenance import write_json_atomic
from trigeo.train.state import check_run_state

__all__ = ["default_head_name", "rows_collate", "start_head_run", "train_m2"]

log = logging.getLogger("trigeo.train")
METRICS_FILE = "metrics.json"


def default_head_name(m1_name: str | None, kind: str, shuffle_time: bool = False) -> str:
    """``M1 coarse`` -> ``M2 coarse`` (``M2 coarse shuffled-time`` for the ablation)."""
    rest = (m1_name or "M1").split(" ", 1)
    name = kind.upper() + (f" {rest[1]}" if len(rest) > 1 else "")
    return name + (" shuffled-time" if shuffle_time else "")


def rows_collate(
    x: np.ndarray, y: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> Callable[[list[int]], dict[str, torch.Tensor]]:
    """A collate function that gathers rows of in-memory arrays by position."""
    tensors = {
        "x": torch.from_numpy(np.array(x, dtype=np.float32)),
        "y": torch.from_numpy(np.array(y, dtype=np.int64)),
        "lat": torch.from_numpy(np.array(lat, dtype=np.float64)),
        "lon": torch.from_numpy(np.array(lon, dtype=np.float64)),
    }

    def collate(items: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(items, dtype=torch.long)
        return {k: v[index] for k, v in tensors.items()}

    return collate


def shuffled_times(posted_at: Any, seed: int) -> Any:
    """The ablation: the same posting times, permuted across photos (seeded)."""
    rng = np.random.default_rng([seed, 30])
    values = np.asarray(posted_at)
    return values[rng.permutation(len(values))]


def start_head_run(
    heads: Any, config: Any, out: Path, resume: bool, report: Callable[[str], None], **ids: Any
) -> tuple[np.ndarray, int]:
    """What M2 and M3 do before training: the run state, the notes, the M2 input.

    ``ids`` names the model the head builds on (``m1_model_id`` or
    ``m2_model_id``) and any other value a resumed run must match (M3's
    ``shuffle_albums``); they join the run state.

    Returns
    -------
    x, n_cells
        M2's input rows (top-k cells, their mass, time features) and the
        mesh's cell count.
    """
    from trigeo.models.m2 import m2_inputs
    from trigeo.train.heads_config import head_config_to_dict

    state = {
        "dataset_sha256": heads.dataset.hash,
        **ids,
        "seed": config.seed,
        "shuffle_time": config.shuffle_time,
        "n_stages": len(config.stages),
    }
    check_run_state(out, state, head_config_to_dict(config), resume)
    for note in heads.notes:
        report(note)
    posted = heads.posted_at
    if config.shuffle_time:
        posted = shuffled_times(posted, config.seed)
        report("--shuffle-time: posting times permuted across the photos (ablation)")
    n_cells = int(heads.mesh.n_cells_)
    return m2_inputs(heads.top_cells, heads.top_probs, n_cells, posted, top_k=config.top_k), n_cells


def train_m2(
    data: str | Path,
    m1: str | Path,
    out: str | Path,
    config: Any,
    *,
    m1_pred: str | Path | None = None,
    resume: bool = False,
    allow_overlap: bool = False,
    name: str | None = None,
    callbacks: Sequence[Any] = (),
    report: Callable[[str], None] = log.info,
) -> Any:
    """Train M2 on the heads photos and save the model directory.

    Parameters
    ----------
    data
        Dataset directory (its ``config.train_split`` photos train M2).
    m1
        The M1 model directory whose predictions feed M2.
    out
        Model directory to write (checkpoints, logs, Lightning's messages in
        ``out/logs/train.log``).
    config
        A :class:`~trigeo.train.heads_config.M2Config`.
    m1_pred
        M1's predictions for the heads photos (default ``out/m1-<split>.parquet``,
        made by running M1 when missing).
    allow_overlap
        Train even if some heads photos also trained M1.
    name
        Display name (default ``M2 <mesh stem>``, from the M1's name).

    Returns
    -------
    M2Model
    """
    import lightning

    from trigeo.models.m2 import M2Model, M2Net
    from trigeo.runtime.devices import set_cpu_threads
    from trigeo.train.heads_config import head_config_to_dict
    from trigeo.train.heads_data import prepare_heads, split_rows
    from trigeo.train.heads_module import fit_head_stages, head_run_metrics

    out = Path(out)
    set_cpu_threads(config.cpu_threads, config.num_workers)
    m1_pred = Path(m1_pred) if m1_pred else out / f"m1-{config.train_split}.parquet"
    heads = prepare_heads(
        data, m1, config, m1_pred=m1_pred, allow_overlap=allow_overlap, report=report
    )
    x, n_cells = start_head_run(
        heads, config, out, resume, report, m1_model_id=heads.m1_meta["model_id"]
    )
    kept = heads.labels >= 0
    stop = split_rows(len(x), config.stop_fraction, config.seed)
    fit_rows, stop_rows = np.flatnonzero(kept & ~stop), np.flatnonzero(kept & stop)
    report(
        f"M2 input: {n_cells} cells + 4; {len(fit_rows)} photos fit, {len(stop_rows)} for "
        "early stopping"
    )
    # Seeded here, not earlier: running M1 for a missing predictions file draws from the RNG.
    lightning.seed_everything(config.seed, workers=True, verbose=False)
    net = M2Net(
        n_cells,
        width=config.width,
        depth=config.depth,
        activations=config.activations,
        dropout=config.dropout,
    )
    label_lat, label_lon = (
        np.asarray(a, dtype=np.float64)
        for a in heads.mesh.centroids(kind=heads.m1_meta["label_kind"])
    )
    collate = rows_collate(x, heads.labels, heads.lat, heads.lon)

    class _Rows(torch.utils.data.Dataset):
        def __init__(self, rows: np.ndarray) -> None:
            self.rows = rows

        def __len__(self) -> int:
            return len(self.rows)

        def __getitem__(self, i: int) -> int:
            return int(self.rows[i])

    fit_set, stop_set = _Rows(fit_rows), _Rows(stop_rows)
    stage_metrics, is_zero = fit_head_stages(
        net,
        config,
        out,
        make_train=lambda rng: fit_set,
        val_set=stop_set,
        collate=collate,
        label_lat=label_lat,
        label_lon=label_lon,
        resume=resume,
        callbacks=callbacks,
        report=report,
    )
    metrics = head_run_metrics(
        stage_metrics, {**heads.counts, "fit": len(fit_rows), "stop": len(stop_rows)}
    )
    model = M2Model(
        net.cpu().eval(),
        heads.mesh,
        label_kind=heads.m1_meta["label_kind"],
        m1=heads.m1_record,
        top_k=config.top_k,
        config=head_config_to_dict(config),
        metrics=metrics,
        name=name or default_head_name(heads.m1_meta.get("name"), "m2", config.shuffle_time),
        provenance=heads.provenance(config, allow_overlap),
    )
    if is_zero:
        model.save(out, heads.mesh_path, inputs={"dataset": heads.dataset.hash})
        write_json_atomic(out / METRICS_FILE, metrics)
        report(f"saved {model.name} ({model.model_id}) to {out}")
    return model
