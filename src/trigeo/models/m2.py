"""M2: M1's top-10 cell probabilities plus the posting time -> a cell (the study's time model).

Three layers live here:

* :func:`time_features` and :func:`m2_inputs`, the pure input-feature builder
  shared by training, prediction and serving: M1's 10 most probable cells,
  renormalised to sum 1 and scattered into an N-vector, their L1 norm ``s``
  (the mass M1 put on them), and three UTC time features. N + 4 values.
* :class:`M2Net`, the pure ``torch.nn.Module`` (``create_model("m2", ...)``):
  dense layers of width 1626 with activations sigmoid, ReLU, sigmoid, each
  with batch norm and 50% dropout, then a linear layer over the N cells
  (softmax at inference). He initialization.
* :class:`M2Model`, the saved model directory (format ``trigeo-m2/1``):
  weights, a copy of the mesh, the M1 it was trained on (id, weights hash,
  directory), the training config, metrics and provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trigeo.errors import InputError
from trigeo.models.heads import (
    TOP_K,
    HeadModel,
    copy_mesh,
    load_mesh_copy,
    read_model_json,
)
from trigeo.models.registry import register_model

__all__ = [
    "ACTIVATIONS",
    "FORMAT",
    "NOT_POSTING_TIMES",
    "N_TIME_FEATURES",
    "TOP_K",
    "M2Model",
    "M2Net",
    "check_m1_predictions",
    "copy_mesh",
    "default_activations",
    "has_posting_time",
    "load_mesh_copy",
    "m2_inputs",
    "read_model_json",
    "time_features",
]

FORMAT = "trigeo-m2/1"
N_TIME_FEATURES = 3
ACTIVATIONS = ("sigmoid", "relu", "tanh")
_STUDY_PATTERN = ("sigmoid", "relu", "sigmoid")


def time_features(posted_at: Any) -> np.ndarray:
    """The study's three time features of UTC posting times, ``(n, 3)`` float32.

    ``((hour - 11.5) / 24, (weekday - 3.5) / 7, (month - 6.5) / 12)`` with
    hour 0-23 and month 1-12 of the UTC time, and weekday 1-7 with Sunday = 1
    (Monday = 2, ..., Saturday = 7). The year is left out on purpose.

    Parameters
    ----------
    posted_at
        Anything ``pandas.to_datetime(..., utc=True)`` reads: timestamps with
        an offset are converted to UTC first; naive ones are taken as UTC.

    Raises
    ------
    InputError
        A missing (NaT) time, naming its position.
    """
    times = pd.to_datetime(pd.Series(posted_at), utc=True)
    missing = times.isna().to_numpy()
    if missing.any():
        raise InputError(
            f"{int(missing.sum())} posting time(s) missing, first at position "
            f"{int(np.flatnonzero(missing)[0])}; photos without a posting time are excluded "
            "before M2",
            column="posted_at",
        )
    hour = times.dt.hour.to_numpy(dtype=np.float64)
    # pandas: Monday = 0 ... Sunday = 6  ->  Sunday = 1, Monday = 2, ..., Saturday = 7.
    weekday = (times.dt.day_of_week.to_numpy(dtype=np.int64) + 1) % 7 + 1
    month = times.dt.month.to_numpy(dtype=np.float64)
    return np.stack(
        [(hour - 11.5) / 24.0, (weekday - 3.5) / 7.0, (month - 6.5) / 12.0], axis=1
    ).astype(np.float32)


def m2_inputs(
    top_cells: Any, top_probs: Any, n_cells: int, posted_at: Any, *, top_k: int = TOP_K
) -> np.ndarray:
    """M2's input vectors, ``(n, n_cells + 4)`` float32.

    Columns ``0..N-1``: M1's ``top_k`` most probable cells, their probabilities
    divided by their sum ``s``, scattered into an N-vector (all other cells 0).
    Column ``N``: ``s``, the L1 norm of the kept probabilities. Columns
    ``N+1..N+3``: :func:`time_features`.

    Parameters
    ----------
    top_cells, top_probs
        ``(n, k)`` cells and probabilities from M1's predictions file (any
        order; cells < 0 are padding and ignored). ``k`` must be at least
        ``min(top_k, n_cells)``.
    n_cells
        N, the kept cells of the mesh.

    Raises
    ------
    InputError
        Fewer than ``top_k`` cells per photo, a cell id outside ``[0, N)``,
        or a missing posting time.
    """
    cells = np.asarray(top_cells, dtype=np.int64)
    probs = np.asarray(top_probs, dtype=np.float64)
    if cells.ndim != 2 or cells.shape != probs.shape:
        raise InputError(f"top cells {cells.shape} and probabilities {probs.shape} must be (n, k)")
    keep = min(int(top_k), int(n_cells))
    if cells.shape[1] < keep:
        raise InputError(
            f"M1's predictions hold {cells.shape[1]} cells per photo; M2 needs the top {keep} "
            f"(rerun `trigeo predict` with --top-k {keep} or more)",
            column="top_cells",
        )
    if (cells >= n_cells).any():
        raise InputError(
            f"cell id {int(cells.max())} outside the mesh's {n_cells} cells; were the "
            "predictions made with another mesh?",
            column="top_cells",
        )
    probs = np.where(cells >= 0, np.clip(probs, 0.0, None), 0.0)
    # The `keep` largest entries of each row (the file is sorted, but do not rely on it).
    order = np.argsort(-probs, axis=1, kind="stable")[:, :keep]
    kept_cells = np.take_along_axis(cells, order, axis=1)
    kept_probs = np.take_along_axis(probs, order, axis=1)
    s = kept_probs.sum(axis=1)
    normalised = np.divide(
        kept_probs, s[:, None], out=np.zeros_like(kept_probs), where=s[:, None] > 0
    )
    n = len(cells)
    x = np.zeros((n, int(n_cells) + 1 + N_TIME_FEATURES), dtype=np.float32)
    rows = np.repeat(np.arange(n), keep)
    valid = kept_cells.ravel() >= 0
    np.add.at(x, (rows[valid], kept_cells.ravel()[valid]), normalised.ravel()[valid])
    x[:, n_cells] = s
    x[:, n_cells + 1 :] = time_features(posted_at) if n else np.zeros((0, 3), np.float32)
    return x


#: ``time_source`` values (``trigeo data photos``) that are not a posting time.
NOT_POSTING_TIMES = ("file-mtime",)


def has_posting_time(rows: pd.DataFrame) -> np.ndarray:
    """Dataset rows with a usable posting time.

    A missing ``posted_at`` is none, and so is a folder import's fallback
    (``time_source == "file-mtime"``: the file's modification time, not when
    the photo was posted). Such photos are left out of M2/M3 and counted.
    """
    ok = rows["posted_at"].notna().to_numpy().copy()
    if "time_source" in rows.columns:
        ok &= ~rows["time_source"].astype(str).isin(NOT_POSTING_TIMES).to_numpy()
    return ok


def check_m1_predictions(pred: Any, path: Path, m1_meta: dict[str, Any]) -> None:
    """Refuse predictions made with another mesh or another model than the given M1.

    A multi-head M1's ``model.json`` lists its heads: predictions of any head
    pass, and the caller picks the head by the file's mesh hash
    (:func:`~trigeo.models.m1.head_record`).
    """
    from trigeo.models.m1 import base_model_id

    hashes = [h["mesh_hash"] for h in m1_meta.get("heads") or []] or [m1_meta["mesh_hash"]]
    if pred.mesh_hash not in hashes:
        raise InputError(
            f"predictions were made on mesh {pred.mesh_hash}, but the M1 uses mesh "
            f"{' or '.join(hashes)}; predict with this M1 again",
            source=path,
            column="mesh_hash",
        )
    if base_model_id(str(pred.model_id)) != m1_meta["model_id"]:
        raise InputError(
            f"predictions were made by {pred.model_id}, not by the given M1 "
            f"{m1_meta['model_id']}; predict with this M1 again",
            source=path,
            column="model_id",
        )
    if pred.top_cells is None:
        raise InputError("predictions hold no top cells (a peer's file?)", source=path)


def default_activations(depth: int) -> list[str]:
    """The study's sigmoid, ReLU, sigmoid pattern, repeated to ``depth`` layers."""
    return [_STUDY_PATTERN[i % len(_STUDY_PATTERN)] for i in range(depth)]


def _activation(name: str) -> nn.Module:
    return {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}[name]()


@register_model("m2")
class M2Net(nn.Module):
    """Dense layers over M2's input vector, then logits over the N cells.

    Each hidden layer is ``Linear -> BatchNorm1d -> activation -> Dropout``.
    Weights get He (Kaiming normal, fan-in) initialization, biases zero.

    Parameters
    ----------
    num_classes
        N, the kept mesh cells (the input has N + 4 values).
    width, depth
        Hidden layer width and count (the study: 1626 = 542 x 3, and 3).
    activations
        One of :data:`ACTIVATIONS` per layer (default: sigmoid, ReLU, sigmoid).
    dropout
        Dropout after every hidden layer (the study: 0.5).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        width: int = 1626,
        depth: int = 3,
        activations: Sequence[str] | None = None,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_classes < 1 or width < 1 or depth < 1:
            raise InputError(
                f"M2 needs num_classes, width and depth >= 1 (got {num_classes}, {width}, {depth})"
            )
        activations = list(activations) if activations else default_activations(depth)
        if len(activations) != depth or any(a not in ACTIVATIONS for a in activations):
            raise InputError(
                f"activations must be {depth} names from {ACTIVATIONS}, got {activations}",
                column="activations",
            )
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must lie in [0, 1), got {dropout}", column="dropout")
        self.num_classes = int(num_classes)
        self.in_features = self.num_classes + 1 + N_TIME_FEATURES
        self.width, self.depth = int(width), int(depth)
        self.activations = activations
        self.dropout = float(dropout)
        layers: list[nn.Module] = []
        size = self.in_features
        for name in activations:
            layers += [
                nn.Linear(size, self.width),
                nn.BatchNorm1d(self.width),
                _activation(name),
                nn.Dropout(self.dropout),
            ]
            size = self.width
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(self.width, self.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def hparams(self) -> dict[str, Any]:
        """Constructor arguments (saved in ``model.json``)."""
        return {
            "num_classes": self.num_classes,
            "width": self.width,
            "depth": self.depth,
            "activations": list(self.activations),
            "dropout": self.dropout,
        }

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer ``(B, width)`` (M3 feeds it to its LSTM)."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class M2Model(HeadModel):
    """A trained M2 with everything ``trigeo predict`` needs (plus M1's predictions).

    ``predict_proba(inputs)`` maps :func:`m2_inputs` rows to cell probabilities.
    """

    FORMAT = FORMAT
    PREFIX = "m2"

    @classmethod
    def _build_net(cls, meta: dict[str, Any]) -> nn.Module:
        return M2Net(**meta["net"])

    @torch.no_grad()
    def predict_proba(
        self, inputs: np.ndarray, *, batch_size: int = 4096, device: str = "cpu"
    ) -> np.ndarray:
        """Softmax over the N cells for each input row, ``(n, N)`` float32."""
        self.net.to(device).eval()
        out = np.zeros((len(inputs), self.num_classes), dtype=np.float32)
        for start in range(0, len(inputs), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch_size]))
            logits = self.net(x.to(device)).float()
            out[start : start + len(x)] = torch.softmax(logits, dim=1).cpu().numpy()
        return out
