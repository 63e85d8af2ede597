"""M3: a bidirectional LSTM over a user's album, on top of M2's layers (the study's albums).

* :func:`make_albums` and :func:`pad_albums`, pure and shared by training and
  prediction: a user's photos in posting-time order (ties by photo id), cut
  into albums of 24; the last album is zero-padded and masked.
* :class:`M3Net` (``create_model("m3", ...)``): per photo, M2's input vector
  goes through M2's dense layers (initialised from a trained M2: the study's
  "M2 concatenated with M3 layers"); the album's sequence of those features
  goes through a bidirectional LSTM; a photo's logits are M2's logits plus a
  linear map of its LSTM state (zero at initialisation, so an untrained M3
  predicts exactly what its M2 does). Padding changes no output: the dense
  layers only see real photos (batch norm statistics included) and the LSTM
  runs on packed sequences.
* :class:`M3Model`, the model directory (format ``trigeo-m3/1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trigeo.errors import InputError
from trigeo.models.heads import HeadModel
from trigeo.models.m2 import M2Net
from trigeo.models.registry import register_model

__all__ = ["ALBUM_SIZE", "FORMAT", "M3Model", "M3Net", "make_albums", "pad_albums"]

FORMAT = "trigeo-m3/1"
#: Photos per album (the study).
ALBUM_SIZE = 24


def make_albums(
    user_id: Any, posted_at: Any, photo_id: Any, album_size: int = ALBUM_SIZE
) -> list[np.ndarray]:
    """Row positions of every album: each user's photos by posting time, ``album_size`` each.

    Ties in ``posted_at`` are broken by ``photo_id``. A user's last album
    holds the remainder; a user with one photo has an album of one. Albums
    come user by user (users in order of first appearance), in time order.
    """
    if album_size < 1:
        raise InputError(f"album_size must be >= 1, got {album_size}")
    frame = pd.DataFrame(
        {
            "user": pd.factorize(np.asarray(user_id).astype(str))[0],
            "time": pd.to_datetime(pd.Series(posted_at), utc=True).to_numpy(),
            "photo": np.asarray(photo_id).astype(str),
        }
    )
    order = frame.sort_values(["user", "time", "photo"], kind="stable").index.to_numpy()
    users = frame["user"].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(order)]
    albums: list[np.ndarray] = []
    for start, end in zip(starts, ends, strict=True):
        for a in range(start, end, album_size):
            albums.append(order[a : min(a + album_size, end)])
    return albums


def pad_albums(
    x: np.ndarray, albums: Sequence[np.ndarray], album_size: int = ALBUM_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Stack albums of rows of ``x`` into ``(A, album_size, D)`` with zero padding and a mask."""
    out = np.zeros((len(albums), album_size, x.shape[1]), dtype=np.float32)
    mask = np.zeros((len(albums), album_size), dtype=bool)
    for i, rows in enumerate(albums):
        out[i, : len(rows)] = x[rows]
        mask[i, : len(rows)] = True
    return out, mask


@register_model("m3")
class M3Net(nn.Module):
    """M2's dense layers per photo, a bidirectional LSTM over the album, logits per photo.

    Parameters
    ----------
    num_classes
        N, the kept mesh cells.
    m2
        Constructor arguments of the :class:`~trigeo.models.m2.M2Net` whose
        layers come first (load a trained M2's weights into ``net.m2``).
    hidden
        LSTM units per direction.
    layers
        Stacked LSTM layers.
    lstm_dropout
        Dropout between stacked LSTM layers (PyTorch's ``dropout``).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        m2: dict[str, Any] | None = None,
        hidden: int = 256,
        layers: int = 1,
        lstm_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        m2 = dict(m2 or {})
        m2["num_classes"] = int(num_classes)
        self.m2 = M2Net(**m2)
        self.num_classes = int(num_classes)
        self.hidden, self.layers, self.lstm_dropout = int(hidden), int(layers), float(lstm_dropout)
        self.lstm = nn.LSTM(
            self.m2.width,
            self.hidden,
            num_layers=self.layers,
            batch_first=True,
            bidirectional=True,
            dropout=self.lstm_dropout if self.layers > 1 else 0.0,
        )
        self.album_head = nn.Linear(2 * self.hidden, self.num_classes)
        nn.init.zeros_(self.album_head.weight)
        nn.init.zeros_(self.album_head.bias)
        self.m2_frozen = False

    def freeze_m2(self, frozen: bool = True) -> M3Net:
        """Keep M2's layers as they are: no gradients, and always in eval mode
        (batch norm statistics and dropout included)."""
        self.m2_frozen = bool(frozen)
        for parameter in self.m2.parameters():
            parameter.requires_grad_(not frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> M3Net:
        super().train(mode)
        if self.m2_frozen:
            self.m2.eval()
        return self

    def hparams(self) -> dict[str, Any]:
        """Constructor arguments (saved in ``model.json``)."""
        m2 = self.m2.hparams()
        m2.pop("num_classes")
        return {
            "num_classes": self.num_classes,
            "m2": m2,
            "hidden": self.hidden,
            "layers": self.layers,
            "lstm_dropout": self.lstm_dropout,
        }

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, N)`` for albums ``x`` ``(B, T, N + 4)``; padded positions are 0.

        ``mask`` ``(B, T)`` marks real photos, which must come first in each
        album; every album holds at least one.
        """
        mask = mask.bool()
        lengths = mask.sum(1)
        steps = torch.arange(mask.shape[1], device=mask.device)
        if (lengths < 1).any() or not torch.equal(mask, steps[None, :] < lengths[:, None]):
            raise InputError("album masks must mark 1 or more photos, all before the padding")
        features = self.m2.features(x[mask])
        sequence = features.new_zeros((*mask.shape, features.shape[1]))
        sequence[mask] = features
        packed = pack_padded_sequence(
            sequence, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        states, _ = pad_packed_sequence(
            self.lstm(packed)[0], batch_first=True, total_length=mask.shape[1]
        )
        per_photo = self.m2.head(features) + self.album_head(states[mask])
        logits = per_photo.new_zeros((*mask.shape, self.num_classes))
        logits[mask] = per_photo
        return logits


class M3Model(HeadModel):
    """A trained M3: its network, mesh, the M1 and M2 it builds on, the album size."""

    FORMAT = FORMAT
    PREFIX = "m3"

    def __init__(
        self,
        net: nn.Module,
        mesh: Any,
        *,
        album_size: int = ALBUM_SIZE,
        m2: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, mesh, **kwargs)
        self.album_size = int(album_size)
        self.m2 = dict(m2 or {})

    def _extra(self) -> dict[str, Any]:
        return {"album_size": self.album_size, "m2": self.m2}

    @classmethod
    def _build_net(cls, meta: dict[str, Any]) -> nn.Module:
        return M3Net(**meta["net"])

    @classmethod
    def _from_meta(cls, meta: dict[str, Any]) -> dict[str, Any]:
        return {"album_size": meta.get("album_size", ALBUM_SIZE), "m2": meta.get("m2")}

    @torch.no_grad()
    def predict_albums(
        self,
        inputs: np.ndarray,
        user_id: Any,
        posted_at: Any,
        photo_id: Any,
        *,
        batch_size: int = 256,
        device: str = "cpu",
    ) -> np.ndarray:
        """Cell probabilities ``(n, N)`` of every photo, from all albums of every user."""
        self.net.to(device).eval()
        albums = make_albums(user_id, posted_at, photo_id, self.album_size)
        out = np.zeros((len(inputs), self.num_classes), dtype=np.float32)
        for start in range(0, len(albums), batch_size):
            chunk = albums[start : start + batch_size]
            x, mask = pad_albums(inputs, chunk, self.album_size)
            mask_t = torch.from_numpy(mask).to(device)
            logits = self.net(torch.from_numpy(x).to(device), mask_t).float()
            probs = torch.softmax(logits[mask_t], dim=1).cpu().numpy()
            out[np.concatenate(chunk)] = probs
        return out
