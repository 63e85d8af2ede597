"""M3: a bidirectional LSTM over a user's album, on top of M2's layers (the study's albums).

* :func:`make_albums` and :func:`pad_albums`, pure and shared by training and
  prediction: a user's photos in posting-time order (ties by photo id), cut
  into albums of 24; the last album is zero-padded and masked.
* :class:`M3Net` (``create_model("m3", ...)``): per photo, M2's input vector
  goes through M2's dense layers (initialised from a trained M2: the study's
  "M2 concatenated with M3 layers"). A photo's logits are M2's logits, plus
  learned weights times album means of M2's output (album averaging as a
  special case), plus an album head on a bidirectional LSTM over the album's
  M2 log-probabilities. The weights and the head start at zero, so an
  untrained M3 predicts exactly what its M2 does. The head has no bias: a
  bias would be a class-score shift shared by every photo, which is how the
  first M3 went wrong (docs/heads.md). Padding changes no output: the dense
  layers only see real photos (batch norm statistics included), the album
  means are masked and the LSTM runs on packed sequences.
* :class:`M3Model`, the model directory (format ``trigeo-m3/2``; ``trigeo-m3/1``
  directories, whose network had no album means, still load).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trigeo.errors import InputError
from trigeo.models.heads import HeadModel, read_model_json
from trigeo.models.m2 import M2Net
from trigeo.models.registry import register_model

__all__ = [
    "ALBUM_MEANS",
    "ALBUM_SIZE",
    "FORMAT",
    "FORMAT_V1",
    "HEAD_CENTERINGS",
    "LSTM_INPUTS",
    "M3Model",
    "M3Net",
    "make_albums",
    "pad_albums",
]

#: The network gained album means and an LSTM over M2's log-probabilities in /2.
FORMAT = "trigeo-m3/2"
FORMAT_V1 = "trigeo-m3/1"
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


#: What the LSTM reads per photo: M2's last hidden layer (``trigeo-m3/1``) or M2's
#: log-probabilities (``N`` values; an album mean of them is then a linear readout).
LSTM_INPUTS = ("features", "logprobs")
#: Album means of M2's output a learned weight can add to a photo's logits: ``prob`` is
#: ``log(mean p)`` (the argmax of ``trigeo evaluate --averaging``), ``logprob`` is
#: ``mean(log p)`` (a product of the album's M2 distributions).
ALBUM_MEANS = ("prob", "logprob")
#: How the album head's output is centred: ``none``, or ``album`` (its mean over the
#: album's photos is subtracted, so it can only move photos relative to their album-mates
#: and cannot add a class-score shift shared by every photo).
HEAD_CENTERINGS = ("none", "album")
#: Log-probabilities fed to the LSTM are clamped here: a cell M2 all but rules out would
#: otherwise feed values near -100 and swamp the LSTM's gates.
_LOGPROB_FLOOR = -16.0
#: ``trigeo-m3/1`` networks (no album means, LSTM over M2's features, head with bias).
V1_NET = {
    "lstm_input": "features",
    "album_means": [],
    "head_bias": True,
    "head_centering": "none",
    "m2_scale": False,
}


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {value!r}", column=name)
    return value


@register_model("m3")
class M3Net(nn.Module):
    """M2's layers per photo, album means of M2's output, a bidirectional LSTM over the album.

    A photo's logits are

        M2 logits + sum_k alpha_k * album mean_k + album head(LSTM states),

    where the album means (:data:`ALBUM_MEANS`) are masked means of M2's
    output over the photo's album (the photo included) and every ``alpha_k``
    and the album head start at zero: an untrained M3 predicts exactly what
    its M2 does, and album averaging is reached by learning ``alpha``.

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
    lstm_input
        One of :data:`LSTM_INPUTS`.
    album_means
        Any of :data:`ALBUM_MEANS`, each with its own learned weight.
    head_bias
        Whether the album head has a bias (a bias is a class-score shift shared
        by every photo: the class prior, which M2 already holds).
    head_centering
        One of :data:`HEAD_CENTERINGS`.
    m2_scale
        Whether M2's own logits get a learned scale (from 1): a temperature. A
        photo's own output is part of its album's means, so without it an
        album weight is also the only way to sharpen an under-confident M2, and
        learns a weight even from random albums (docs/heads.md). A temperature
        changes no photo's top cell.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        m2: dict[str, Any] | None = None,
        hidden: int = 256,
        layers: int = 1,
        lstm_dropout: float = 0.0,
        lstm_input: str = "logprobs",
        album_means: Sequence[str] = ALBUM_MEANS,
        head_bias: bool = False,
        head_centering: str = "none",
        m2_scale: bool = False,
    ) -> None:
        super().__init__()
        m2 = dict(m2 or {})
        m2["num_classes"] = int(num_classes)
        self.m2 = M2Net(**m2)
        self.num_classes = int(num_classes)
        self.hidden, self.layers, self.lstm_dropout = int(hidden), int(layers), float(lstm_dropout)
        self.lstm_input = _check_choice("lstm_input", lstm_input, LSTM_INPUTS)
        self.album_means = [_check_choice("album_means", m, ALBUM_MEANS) for m in album_means]
        if len(set(self.album_means)) != len(self.album_means):
            raise InputError(f"album_means repeats a kind: {self.album_means}")
        self.head_bias = bool(head_bias)
        self.head_centering = _check_choice("head_centering", head_centering, HEAD_CENTERINGS)
        self.lstm = nn.LSTM(
            self.m2.width if self.lstm_input == "features" else self.num_classes,
            self.hidden,
            num_layers=self.layers,
            batch_first=True,
            bidirectional=True,
            dropout=self.lstm_dropout if self.layers > 1 else 0.0,
        )
        self.album_head = nn.Linear(2 * self.hidden, self.num_classes, bias=self.head_bias)
        nn.init.zeros_(self.album_head.weight)
        if self.album_head.bias is not None:
            nn.init.zeros_(self.album_head.bias)
        if self.album_means:
            # One weight per album mean, zero: training starts from M2 and moves towards
            # averaging only as far as the loss asks.
            self.album_weight = nn.Parameter(torch.zeros(len(self.album_means)))
        self.m2_scale = bool(m2_scale)
        if self.m2_scale:
            self.m2_logit_scale = nn.Parameter(torch.ones(()))
        self.m2_frozen = False
        #: Set while training with frozen M2 layers: ``x`` then holds M2's logits, computed
        #: once for every photo instead of once per photo and epoch (not saved).
        self.m2_logits_given = False

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
            "lstm_input": self.lstm_input,
            "album_means": list(self.album_means),
            "head_bias": self.head_bias,
            "head_centering": self.head_centering,
            "m2_scale": self.m2_scale,
        }

    def album_mean_weights(self) -> dict[str, float]:
        """The learned weight of each album mean (``{}`` without album means)."""
        if not self.album_means:
            return {}
        values = self.album_weight.detach().cpu().tolist()
        return dict(zip(self.album_means, values, strict=True))

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
        features: torch.Tensor | None = None
        if self.m2_logits_given:
            if self.lstm_input == "features" or not self.m2_frozen:
                raise InputError("M2's logits can stand in for M2 only if it is frozen and unread")
            m2_logits = x[mask]
        else:
            features = self.m2.features(x[mask])
            m2_logits = self.m2.head(features)
        logp = torch.log_softmax(m2_logits.float(), dim=1)
        per_photo = m2_logits * self.m2_logit_scale if self.m2_scale else m2_logits
        # Each photo's album (row of the batch), to hand album-level values back to photos.
        album_of = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(mask)[mask]
        n = lengths.to(logp.dtype)[:, None]
        for k, kind in enumerate(self.album_means):
            padded = logp.new_full((*mask.shape, self.num_classes), float("-inf"))
            padded[mask] = logp
            if kind == "prob":  # log of the album's mean probability vector
                mean = torch.logsumexp(padded, dim=1) - n.log()
            else:  # the album's mean log-probability vector
                mean = padded.masked_fill(~mask[..., None], 0.0).sum(1) / n
            per_photo = per_photo + self.album_weight[k] * mean[album_of].to(per_photo.dtype)
        if features is not None and self.lstm_input == "features":
            inputs = features
        else:
            inputs = logp.clamp_min(_LOGPROB_FLOOR).to(m2_logits.dtype)
        sequence = inputs.new_zeros((*mask.shape, inputs.shape[1]))
        sequence[mask] = inputs
        packed = pack_padded_sequence(
            sequence, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        states, _ = pad_packed_sequence(
            self.lstm(packed)[0], batch_first=True, total_length=mask.shape[1]
        )
        added = self.album_head(states[mask])
        if self.head_centering == "album":
            padded_added = added.new_zeros((*mask.shape, self.num_classes))
            padded_added[mask] = added
            added = added - (padded_added.sum(1) / n.to(added.dtype))[album_of]
        per_photo = per_photo + added
        logits = per_photo.new_zeros((*mask.shape, self.num_classes))
        logits[mask] = per_photo
        return logits


class M3Model(HeadModel):
    """A trained M3: its network, mesh, the M1 and M2 it builds on, the album size.

    :meth:`load` reads ``trigeo-m3/2`` directories and the older
    ``trigeo-m3/1`` ones (their network is :data:`V1_NET`).
    """

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

    @classmethod
    def load(cls, root: str | Path, map_location: str | torch.device = "cpu") -> Any:
        """Load a ``trigeo-m3/2`` or ``trigeo-m3/1`` model directory.

        Raises
        ------
        ArtifactError
            Another format, or what :meth:`HeadModel.load` refuses.
        """
        fmt = read_model_json(root).get("format")
        if fmt == FORMAT_V1 and cls is M3Model:
            return _M3ModelV1.load(root, map_location)
        return super().load(root, map_location)

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


class _M3ModelV1(M3Model):
    """A ``trigeo-m3/1`` directory: the network before album means (:data:`V1_NET`)."""

    FORMAT = FORMAT_V1

    @classmethod
    def _build_net(cls, meta: dict[str, Any]) -> nn.Module:
        return M3Net(**{**V1_NET, **meta["net"]})
