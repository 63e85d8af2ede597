"""M1 training configuration: dataclasses, YAML I/O and the study's default procedure.

The default :class:`TrainConfig` *is* the study's procedure (see
``docs/training.md`` for every choice made where the study is vague):

1. Adagrad cycles with class-balanced sampling whose bias steps down,
   beta = 1 (classes uniform) -> 0.5 -> 0 (natural frequencies); each cycle
   starts from the previous cycle's weights.
2. Epoch size starts at K x 200 examples and grows 6 % per epoch.
3. A final SGD stage over the full data each epoch, no class bias, learning
   rate lr0 falling linearly by 4 % of lr0 per epoch.

Every knob is a YAML key; ``trigeo train m1 --config FILE`` overrides the
defaults, and packaged presets (``study``, ``demo``, ``test``) can be named
instead of a file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trigeo.errors import InputError

__all__ = [
    "AugmentConfig",
    "StageConfig",
    "TrainConfig",
    "config_to_dict",
    "load_config",
    "study_stages",
]

OPTIMIZERS = ("adagrad", "sgd")
SAMPLINGS = ("balanced", "full")
PRESETS = ("study", "demo", "quick", "test")


@dataclass
class StageConfig:
    """One training stage (a "cycle" in the study's words).

    Attributes
    ----------
    name : str
    optimizer : {"adagrad", "sgd"}
    lr : float
        Initial learning rate (lr0).
    epochs : int
    sampling : {"balanced", "full"}
        ``balanced``: each epoch draws examples with class weight
        n_c^(1 - beta), epoch size from :attr:`TrainConfig.samples_per_class`
        and :attr:`TrainConfig.epoch_growth`. ``full``: every kept photo once
        per epoch in a fresh random order.
    beta : float
        Class-bias exponent for ``balanced`` (1 = uniform over classes,
        0 = natural frequencies).
    lr_decay : float
        Linear decay per epoch as a fraction of lr0: lr_e = lr0 * max(0, 1 - lr_decay * e).
    momentum, weight_decay : float
        SGD momentum (ignored by Adagrad); L2 weight decay for both.
    """

    name: str
    optimizer: str = "adagrad"
    lr: float = 0.01
    epochs: int = 4
    sampling: str = "balanced"
    beta: float = 1.0
    lr_decay: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 0.0

    def validate(self, source: Any = None) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InputError(
                f"stage {self.name!r}: optimizer must be one of {OPTIMIZERS}, got "
                f"{self.optimizer!r}",
                source=source,
            )
        if self.sampling not in SAMPLINGS:
            raise InputError(
                f"stage {self.name!r}: sampling must be one of {SAMPLINGS}, got {self.sampling!r}",
                source=source,
            )
        if self.epochs < 1 or not self.lr > 0 or self.lr_decay < 0:
            raise InputError(
                f"stage {self.name!r}: need epochs >= 1, lr > 0 and lr_decay >= 0", source=source
            )


def study_stages() -> list[StageConfig]:
    """The study's procedure with our choices for its unstated numbers."""
    return [
        StageConfig("adagrad-beta1", "adagrad", lr=0.01, epochs=4, beta=1.0),
        StageConfig("adagrad-beta0.5", "adagrad", lr=0.01, epochs=4, beta=0.5),
        StageConfig("adagrad-beta0", "adagrad", lr=0.01, epochs=4, beta=0.0),
        StageConfig(
            "sgd-full", "sgd", lr=0.01, epochs=20, sampling="full", lr_decay=0.04, momentum=0.9
        ),
    ]


@dataclass
class AugmentConfig:
    """Train-time augmentation passed to ``timm.data.create_transform``."""

    scale: tuple[float, float] = (0.08, 1.0)
    hflip: float = 0.5
    color_jitter: float = 0.4


@dataclass
class TrainConfig:
    """Everything that shapes an M1 training run (YAML keys = attribute names)."""

    backbone: str = "inception_v4"
    weights: str | None = None
    pretrained: bool = True
    freeze_backbone: bool = False
    label: str = "imagery"
    image_size: int | None = None
    drop_rate: float = 0.0
    label_smoothing: float = 0.0
    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int = 4
    seed: int = 0
    samples_per_class: int = 200
    epoch_growth: float = 0.06
    max_epoch_samples: int | None = None
    growth_resets_per_stage: bool = False
    stages: list[StageConfig] = field(default_factory=study_stages)
    max_epochs: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train_split: str = "train"
    val_split: str | None = "heads"
    val_max_photos: int | None = 5000
    max_dropped_fraction: float = 0.5
    max_unreadable_fraction: float = 0.05
    image_check_samples: int = 64
    mesh_hash: str | None = None
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    progress: bool = True
    log_every_n_steps: int = 50
    cpu_threads: int | None = None
    keep_checkpoints: int = 1

    def validate(self, source: Any = None) -> TrainConfig:
        """Check values; raise ``InputError`` naming the bad key."""
        if self.label not in ("imagery", "cell"):
            raise InputError(
                f"label must be 'imagery' or 'cell', got {self.label!r}", source=source
            )
        if not self.stages:
            raise InputError("at least one stage is needed", source=source, column="stages")
        for stage in self.stages:
            stage.validate(source)
        for key in ("batch_size", "samples_per_class"):
            if getattr(self, key) < 1:
                raise InputError(f"{key} must be >= 1", source=source, column=key)
        if self.num_workers < 0 or self.epoch_growth < 0:
            raise InputError("num_workers and epoch_growth must be >= 0", source=source)
        for key in ("max_dropped_fraction", "max_unreadable_fraction"):
            if not 0 <= getattr(self, key) <= 1:
                raise InputError(f"{key} must lie in [0, 1]", source=source, column=key)
        if not 0 <= self.label_smoothing < 1:
            raise InputError(
                f"label_smoothing must lie in [0, 1), got {self.label_smoothing}",
                source=source,
                column="label_smoothing",
            )
        if self.image_check_samples < 0:
            raise InputError(
                "image_check_samples must be >= 0", source=source, column="image_check_samples"
            )
        return self

    def stage_epochs(self, stage: StageConfig) -> int:
        """A stage's epoch count after the ``max_epochs`` cap."""
        return min(stage.epochs, self.max_epochs) if self.max_epochs else stage.epochs

    def epoch_samples(self, n_classes: int, epoch: int) -> int:
        """Examples in balanced epoch ``epoch``: K x samples_per_class x (1 + growth)^epoch."""
        n = math.ceil(n_classes * self.samples_per_class * (1.0 + self.epoch_growth) ** epoch)
        return min(n, self.max_epoch_samples) if self.max_epoch_samples else n


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON/YAML-ready dict of a config (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def _build(cls: type, data: dict[str, Any], source: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"{where or 'config'} must be a mapping", source=source)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        import difflib

        hints = [
            f"{key!r} (did you mean {close[0]!r}?)"
            if (close := difflib.get_close_matches(key, list(names), n=1))
            else repr(key)
            for key in unknown
        ]
        raise InputError(f"unknown key(s) {', '.join(hints)} in {where or 'config'}", source=source)
    kwargs = dict(data)
    if cls is TrainConfig:
        if "stages" in kwargs:
            stages = kwargs["stages"]
            if not isinstance(stages, list):
                raise InputError("stages must be a list", source=source, column="stages")
            kwargs["stages"] = [
                _build(StageConfig, s, source, f"stages[{i}]") for i, s in enumerate(stages)
            ]
        if "augment" in kwargs:
            kwargs["augment"] = _build(AugmentConfig, kwargs["augment"], source, "augment")
    if cls is AugmentConfig and "scale" in kwargs:
        kwargs["scale"] = tuple(float(v) for v in kwargs["scale"])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"{where or 'config'}: {exc}", source=source) from exc


def preset_path(name: str) -> Path:
    """Path of a packaged preset YAML (``study``, ``demo``, ``test``)."""
    return Path(str(resources.files("trigeo.train") / "configs" / f"{name}.yaml"))


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Read a YAML config (file path or preset name) and apply overrides.

    Keys absent from the file keep the study's defaults. ``overrides`` (from
    CLI flags) win over the file; ``None`` values are ignored.

    Raises
    ------
    InputError
        Unknown keys (with a suggestion), bad values, unreadable YAML.
    """
    data: dict[str, Any] = {}
    source: Any = None
    if path is not None:
        source = preset_path(str(path)) if str(path) in PRESETS else Path(path)
        if not source.exists():
            raise InputError(f"config file not found (presets: {', '.join(PRESETS)})", source=path)
        try:
            data = yaml.safe_load(source.read_text("utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"invalid YAML ({exc})", source=source) from exc
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config = _build(TrainConfig, data, source, "")
    return config.validate(source)
