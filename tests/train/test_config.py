"""Training config: the study's defaults, YAML, validation, learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trigeo.errors import InputError
from trigeo.models import M1Net
from trigeo.train.config import TrainConfig, config_to_dict, load_config
from trigeo.train.module import M1Module


def test_defaults_are_the_study_procedure():
    config = TrainConfig()
    # The study fine-tunes ImageNet weights.
    assert config.backbone == "inception_v4" and config.pretrained is True
    assert (config.samples_per_class, config.epoch_growth) == (200, 0.06)
    sampled = [s for s in config.stages if s.sampling == "balanced"]
    assert [s.optimizer for s in sampled] == ["adagrad"] * 3
    assert [s.beta for s in sampled] == [1.0, 0.5, 0.0]
    final = config.stages[-1]
    assert (final.optimizer, final.sampling, final.lr_decay) == ("sgd", "full", 0.04)
    assert 0.004 <= final.lr <= 0.02
    assert config.epoch_samples(538, 0) == 538 * 200
    assert config.epoch_samples(538, 2) == pytest.approx(538 * 200 * 1.06**2, abs=1)


def test_packaged_study_yaml_matches_the_defaults():
    assert config_to_dict(load_config("study")) == config_to_dict(TrainConfig())


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "backbone: resnet10t\nbatch_size: 16\n"
        "stages:\n  - {name: only, optimizer: sgd, lr: 0.004, epochs: 2, sampling: full}\n"
        "augment: {scale: [0.5, 1.0]}\n"
    )
    config = load_config(path, {"batch_size": 4, "seed": None, "label": "cell"})
    assert config.backbone == "resnet10t" and config.batch_size == 4 and config.seed == 0
    assert config.label == "cell" and config.augment.scale == (0.5, 1.0)
    assert [s.name for s in config.stages] == ["only"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("bach_size: 3\n", "did you mean 'batch_size'"),
        ("stages:\n  - {name: a, optimizer: adam}\n", "optimizer must be one of"),
        ("stages:\n  - {name: a, lrr: 0.1}\n", r"stages\[0\]"),
        ("label: centre\n", "label must be"),
        ("stages: []\n", "at least one stage"),
        ("backbone: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_config(path)


def test_missing_config_file_lists_presets(tmp_path):
    with pytest.raises(InputError, match="presets"):
        load_config(tmp_path / "nope.yaml")


def test_max_epochs_caps_every_stage():
    config = load_config(None, {"max_epochs": 2})
    assert [config.stage_epochs(s) for s in config.stages] == [2, 2, 2, 2]


def test_final_stage_learning_rate_falls_linearly_by_four_percent():
    config = TrainConfig()
    final = config.stages[-1]
    module = M1Module(M1Net("test_resnet", 3), final, label_lat=np.zeros(3), label_lon=np.zeros(3))
    setup = module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD)
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [final.lr * (1 - 0.04 * e) for e in range(5)]
    assert rates == pytest.approx(expected)
    first = M1Module(
        M1Net("test_resnet", 3),
        config.stages[0],
        label_lat=torch.zeros(3),
        label_lon=torch.zeros(3),
    )
    assert isinstance(first.configure_optimizers()["optimizer"], torch.optim.Adagrad)
