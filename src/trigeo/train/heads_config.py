"""Configurations of the M2 (time) and M3 (album) heads: dataclasses and YAML presets.

The defaults are the study's where it states them (M2: width 1626, depth 3,
sigmoid/ReLU/sigmoid, batch norm, 50% dropout, Adam at 0.005 then 0.001,
early stopping on validation accuracy) and our documented choices elsewhere
(``docs/heads.md``). Presets: ``trigeo train m2 --config study|demo|test``
reads ``train/configs/m2-<preset>.yaml`` (``m3-<preset>.yaml`` for M3).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trigeo.errors import InputError

__all__ = [
    "MONITORS",
    "HeadStage",
    "M2Config",
    "M3Config",
    "head_config_to_dict",
    "load_head_config",
]

PRESETS = ("study", "demo", "test")
#: Early-stopping criteria: config value -> (logged metric on the stop photos, direction).
#: ``top1`` is the study's "validation accuracy" (top-1 cell); ``loss`` is the stop photos'
#: mean cross-entropy (NLL), which also sees how much probability lands on the true cell
#: and its neighbours; ``mean_acc`` is the mean accuracy within 1/25/200/750/2500 km.
MONITORS: dict[str, tuple[str, str]] = {
    "top1": ("val/acc", "max"),
    "loss": ("val/loss", "min"),
    "mean_acc": ("val/acc_mean", "max"),
}
#: How M3 picks its training albums each epoch.
ALBUM_SAMPLINGS = ("all", "one-per-user")


@dataclass
class HeadStage:
    """One Adam stage: ``lr`` until early stopping (or ``max_epochs``)."""

    name: str
    lr: float = 0.005
    max_epochs: int = 50


def _m2_stages() -> list[HeadStage]:
    return [HeadStage("adam-0.005", 0.005, 50), HeadStage("adam-0.001", 0.001, 50)]


def _m3_stages() -> list[HeadStage]:
    return [HeadStage("adam-0.001", 0.001, 50)]


@dataclass
class _Common:
    """Keys shared by both heads (YAML keys = attribute names)."""

    train_split: str = "heads"
    stop_fraction: float = 0.15
    patience: int = 5
    batch_size: int = 256
    seed: int = 0
    top_k: int = 10
    shuffle_time: bool = False
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    progress: bool = True
    cpu_threads: int | None = None
    num_workers: int = 0
    m1_batch_size: int = 64
    m1_num_workers: int = 2
    #: Early-stopping criterion, a key of :data:`MONITORS`.
    monitor: str = "top1"

    def _check_common(self, source: Any) -> None:
        if self.monitor not in MONITORS:
            raise InputError(
                f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}",
                source=source,
                column="monitor",
            )
        if not 0.0 < self.stop_fraction < 1.0:
            raise InputError(
                f"stop_fraction must lie in (0, 1), got {self.stop_fraction}",
                source=source,
                column="stop_fraction",
            )
        for key in ("patience", "batch_size", "top_k"):
            if getattr(self, key) < 1:
                raise InputError(f"{key} must be >= 1", source=source, column=key)
        stages = getattr(self, "stages", [])
        if not stages:
            raise InputError("at least one stage is needed", source=source, column="stages")
        for stage in stages:
            if not stage.lr > 0 or stage.max_epochs < 1:
                raise InputError(
                    f"stage {stage.name!r}: need lr > 0 and max_epochs >= 1", source=source
                )


@dataclass
class M2Config(_Common):
    """M2: dense layers over M1's top-10 and the posting time."""

    width: int = 1626
    depth: int = 3
    activations: list[str] | None = None
    dropout: float = 0.5
    stages: list[HeadStage] = field(default_factory=_m2_stages)

    def validate(self, source: Any = None) -> M2Config:
        self._check_common(source)
        if self.width < 1 or self.depth < 1:
            raise InputError("width and depth must be >= 1", source=source)
        return self


@dataclass
class M3Config(_Common):
    """M3: album means of M2's output and a bidirectional LSTM over albums, on M2's layers.

    ``lstm_input``, ``album_means``, ``head_bias``, ``head_centering`` and
    ``m2_scale`` are :class:`~trigeo.models.m3.M3Net`'s arguments. ``album_sampling`` is
    ``all`` (every album with a fit photo, every epoch) or ``one-per-user``
    (the study: one random album per user and epoch, weighted by the user's
    album count when ``album_weighting``). ``shuffle_albums`` is the ablation:
    albums are cut from the split's photos with their user ids permuted.
    """

    hidden: int = 256
    layers: int = 1
    album_size: int = 24
    lstm_dropout: float = 0.0
    lstm_input: str = "logprobs"
    album_means: list[str] = field(default_factory=lambda: ["prob", "logprob"])
    head_bias: bool = False
    head_centering: str = "none"
    m2_scale: bool = True
    train_m2_layers: bool = True
    album_sampling: str = "all"
    album_weighting: bool = True
    shuffle_albums: bool = False
    batch_size: int = 32
    monitor: str = "loss"
    stages: list[HeadStage] = field(default_factory=_m3_stages)

    def validate(self, source: Any = None) -> M3Config:
        from trigeo.models.m3 import ALBUM_MEANS, HEAD_CENTERINGS, LSTM_INPUTS

        self._check_common(source)
        if self.hidden < 1 or self.layers < 1 or self.album_size < 1:
            raise InputError("hidden, layers and album_size must be >= 1", source=source)
        for key, value, choices in (
            ("lstm_input", self.lstm_input, LSTM_INPUTS),
            ("head_centering", self.head_centering, HEAD_CENTERINGS),
            ("album_sampling", self.album_sampling, ALBUM_SAMPLINGS),
        ):
            if value not in choices:
                raise InputError(
                    f"{key} must be one of {', '.join(choices)}, got {value!r}",
                    source=source,
                    column=key,
                )
        if not isinstance(self.album_means, list) or any(
            m not in ALBUM_MEANS for m in self.album_means
        ):
            raise InputError(
                f"album_means must be a list of {', '.join(ALBUM_MEANS)}, got {self.album_means!r}",
                source=source,
                column="album_means",
            )
        return self


def head_config_to_dict(config: Any) -> dict[str, Any]:
    """JSON/YAML-ready dict of a head config."""
    return dataclasses.asdict(config)


def _build(cls: type, data: Any, source: Any) -> Any:
    if not isinstance(data, dict):
        raise InputError("config must be a mapping", source=source)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        hints = [
            f"{key!r} (did you mean {close[0]!r}?)"
            if (close := difflib.get_close_matches(key, names, n=1))
            else repr(key)
            for key in unknown
        ]
        raise InputError(f"unknown key(s) {', '.join(hints)}", source=source)
    kwargs = dict(data)
    if "stages" in kwargs:
        if not isinstance(kwargs["stages"], list):
            raise InputError("stages must be a list", source=source, column="stages")
        try:
            kwargs["stages"] = [HeadStage(**s) for s in kwargs["stages"]]
        except TypeError as exc:
            raise InputError(f"stages: {exc}", source=source, column="stages") from exc
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(str(exc), source=source) from exc


def load_head_config(
    kind: str, path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """Read an M2 or M3 config (a YAML file or a preset name) and apply overrides.

    Parameters
    ----------
    kind
        ``"m2"`` or ``"m3"``.
    path
        A YAML file, or a preset (``study``, ``demo``, ``test``); ``None``: the defaults.
    overrides
        CLI values; ``None`` values are ignored.

    Raises
    ------
    InputError
        Unknown keys (with a suggestion), bad values, unreadable YAML.
    """
    cls = {"m2": M2Config, "m3": M3Config}[kind]
    data: dict[str, Any] = {}
    source: Any = None
    if path is not None:
        if str(path) in PRESETS:
            source = Path(str(resources.files("trigeo.train") / "configs" / f"{kind}-{path}.yaml"))
        else:
            source = Path(path)
        if not source.exists():
            raise InputError(f"config file not found (presets: {', '.join(PRESETS)})", source=path)
        try:
            data = yaml.safe_load(source.read_text("utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"invalid YAML ({exc})", source=source) from exc
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return _build(cls, data, source).validate(source)
