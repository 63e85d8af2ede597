"""Devices, precision and rank resolution shared by training and inference."""

from __future__ import annotations

import pytest

from trigeo.runtime.devices import launch_rank, parse_devices, trainer_precision


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4", 4), (" 2 ", 2), ("auto", "auto"), ("0,1", "0,1"), (None, None)],
)
def test_parse_devices(value, expected):
    assert parse_devices(value) == expected


def test_precision_auto_is_full_on_cpu_and_explicit_values_pass():
    assert trainer_precision("auto", "cpu") == "32-true"
    assert trainer_precision("16-mixed", "cpu") == "16-mixed"


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({}, 0),
        ({"RANK": "3"}, 3),
        ({"SLURM_PROCID": "5"}, 5),
        ({"LOCAL_RANK": "1"}, 1),
        ({"LOCAL_RANK": "1", "NODE_RANK": "2"}, 2001),
    ],
)
def test_launch_rank_reads_the_launchers_variables(monkeypatch, env, rank):
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launch_rank() == rank


def test_train_and_predict_do_not_import_each_other():
    # Data flows one way: both stages share trigeo.runtime instead.
    import ast
    from pathlib import Path

    import trigeo

    root = Path(trigeo.__file__).parent
    for stage, other in (("train", "trigeo.predict"), ("predict", "trigeo.train")):
        for path in (root / stage).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                bad = [n for n in names if n == other or n.startswith(other + ".")]
                assert not bad, f"{path} imports {bad}"


def test_one_torch_device_from_accelerator_and_devices(monkeypatch):
    import torch

    from trigeo.errors import InputError
    from trigeo.runtime.devices import torch_device

    assert torch_device("cpu", "auto") == "cpu"
    assert torch_device("gpu", "1") == "cuda:0"  # a count of one
    assert torch_device("cuda", "2,") == "cuda:2"  # an id list of one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert torch_device("auto", None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_device("AUTO", "auto") == "cuda:0"
    with pytest.raises(InputError, match="one device"):
        torch_device("gpu", "0,1")
    with pytest.raises(InputError, match="--accelerator"):
        torch_device("tpu", None)


def test_a_usable_device_is_one_this_machine_has(monkeypatch):
    import torch

    from trigeo.errors import InputError
    from trigeo.runtime.devices import usable_device

    assert usable_device("cpu", "auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert usable_device("auto", None) == "cpu"
    with pytest.raises(InputError, match=r"no CUDA GPU.*--accelerator cpu"):
        usable_device("gpu", "auto")
    with pytest.raises(InputError, match="no MPS device"):
        usable_device("mps", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert usable_device("gpu", "1,") == "cuda:1"
    with pytest.raises(InputError, match="GPU 2 asked for, 2 present"):
        usable_device("cuda", "2,")
