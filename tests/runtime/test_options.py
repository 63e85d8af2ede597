"""One InferenceOptions object carries the inference options of every command."""

from __future__ import annotations

import dataclasses

import pytest

from trigeo.runtime.options import InferenceOptions


def test_command_line_devices_are_read_as_lightning_takes_them():
    assert InferenceOptions.from_cli(devices="4").devices == 4
    assert InferenceOptions.from_cli(devices="0,1").devices == "0,1"
    assert InferenceOptions.from_cli(devices="auto").devices == "auto"
    assert InferenceOptions.from_cli(devices=None).devices == "auto"
    got = InferenceOptions.from_cli(batch_size=8, num_workers=0, progress=False)
    assert (got.batch_size, got.num_workers, got.progress) == (8, 0, False)


def test_options_are_frozen_and_replace_makes_a_copy():
    options = InferenceOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 1  # type: ignore[misc]
    assert options.replace(max_unreadable=1.0).max_unreadable == 1.0
    assert options.max_unreadable == 0.05


def test_trainer_args_are_make_trainers_keywords():
    import inspect

    from trigeo.runtime.trainer import make_trainer

    args = InferenceOptions(strategy="ddp", num_nodes=2).trainer_args()
    assert set(args) <= set(inspect.signature(make_trainer).parameters)
    assert args["strategy"] == "ddp" and args["num_nodes"] == 2
