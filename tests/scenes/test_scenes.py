"""Places365 indoor/outdoor scoring: the rule, the published checkpoint layout, the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train._world import build_world
from trigeo.data.table import Dataset
from trigeo.errors import InputError, UnreadableImagesError
from trigeo.runtime.options import InferenceOptions
from trigeo.scenes.places365 import (
    N_CATEGORIES,
    load_places_checkpoint,
    outdoor_flags,
    outdoor_probability,
    places_categories,
    places_transform,
)
from trigeo.scenes.run import PARTIAL_FILE, score_outdoor

torch.set_num_threads(1)


def _quiet(**kw):
    return InferenceOptions(num_workers=0, progress=False, **kw)


def test_the_shipped_list_is_the_published_one():
    names, flags = places_categories(), outdoor_flags()
    assert len(names) == N_CATEGORIES == len(flags)
    assert names[0] == "/a/airfield" and flags[0] == 1
    assert names[1] == "/a/airplane_cabin" and flags[1] == 0
    assert names[-1] == "/z/zen_garden" and flags[-1] == 1
    # IO_places365.txt flags 204 categories outdoor and 161 indoor.
    assert int(flags.sum()) == 204


def test_rule_is_the_mean_outdoor_flag_of_the_top_ten():
    flags = outdoor_flags()
    outdoor, indoor = np.flatnonzero(flags == 1), np.flatnonzero(flags == 0)
    logits = np.zeros((3, N_CATEGORIES))
    # Photo 0: top 10 = 7 outdoor + 3 indoor categories; an 11th outdoor one just below.
    logits[0, outdoor[:7]] = 5.0
    logits[0, indoor[:3]] = 4.0
    logits[0, outdoor[7]] = 3.9
    # Photo 1: all ten indoor. Photo 2: all ten outdoor, indoor ones ranked 11th and below.
    logits[1, indoor[:10]] = 2.0
    logits[2, outdoor[:10]] = 1.0
    logits[2, indoor[:50]] = 0.5
    np.testing.assert_allclose(outdoor_probability(logits), [0.7, 0.0, 1.0])
    with pytest.raises(ValueError, match="365"):
        outdoor_probability(np.zeros((2, 10)))


def _published(tmp_path, arch="resnet18"):
    # The layout of the public files: {"epoch", "arch", "state_dict": {"module.<name>"}}.
    from torchvision import models

    torch.manual_seed(0)
    net = getattr(models, arch)(num_classes=N_CATEGORIES)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / f"{arch}_places365.pth.tar"
    torch.save({"epoch": 90, "arch": arch, "best_prec1": 54.7, "state_dict": state}, path)
    return path, net.eval()


def test_published_layout_loads_and_other_files_are_refused(tmp_path):
    path, reference = _published(tmp_path)
    net = load_places_checkpoint(path, "resnet18")
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), reference(x))
    with pytest.raises(InputError, match=r"places2\.csail\.mit\.edu"):
        load_places_checkpoint(tmp_path / "missing.pth.tar", "resnet18")
    with pytest.raises(InputError, match="do not fit a 365-class resnet50"):
        load_places_checkpoint(path, "resnet50")
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read a checkpoint"):
        load_places_checkpoint(tmp_path / "junk.pth.tar", "resnet18")
    with pytest.raises(InputError, match="unknown Places365 architecture"):
        load_places_checkpoint(path, "vgg16")


@pytest.fixture(scope="module")
def scene_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    dataset = build_world(root / "world", per_city=6)
    weights, net = _published(root)
    return dataset, weights, net


def _independent(dataset: Dataset, net) -> np.ndarray:
    from PIL import Image

    transform = places_transform()
    batch = torch.stack(
        [transform(Image.open(dataset.root / ref).convert("RGB")) for ref in dataset.table["image"]]
    )
    with torch.inference_mode():
        logits = net(batch).numpy()
    flags = outdoor_flags()
    top = np.argsort(-logits, axis=1)[:, :10]
    return flags[top].mean(axis=1)


def test_scores_fill_the_outdoor_column(scene_world, tmp_path):
    dataset, weights, net = scene_world
    out = tmp_path / "scored"
    result = score_outdoor(dataset.root, weights, out=out, options=_quiet(batch_size=7))
    written = Dataset.open(out)
    np.testing.assert_allclose(written.table["outdoor"], _independent(dataset, net), atol=1e-12)
    assert result.scored == len(dataset.table) and not result.skipped
    # The images stay where they were: the new table points at them.
    assert written.table["image"].map(lambda p: (written.root / p).exists()).all()
    assert written.meta["provenance"]["config"]["arch"] == "resnet18"
    assert not (out / PARTIAL_FILE).exists()


def test_interrupted_run_resumes_to_the_same_scores(scene_world, tmp_path):
    dataset, weights, net = scene_world

    def crash(number):
        if number == 2:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        score_outdoor(dataset.root, weights, out=out, options=_quiet(batch_size=5),
                      checkpoint_every=1, on_batch=crash)  # fmt: skip
    assert (out / PARTIAL_FILE).exists() and not (out / "table.parquet").exists()
    result = score_outdoor(dataset.root, weights, out=out, options=_quiet(batch_size=5))
    assert result.resumed == 10
    np.testing.assert_allclose(
        Dataset.open(out).table["outdoor"], _independent(dataset, net), atol=1e-12
    )


def test_unreadable_images_are_left_empty_or_stop_the_run(scene_world, tmp_path):
    import shutil

    dataset, weights, _ = scene_world
    shutil.copytree(dataset.root, tmp_path / "copy")
    copy = Dataset.open(tmp_path / "copy")
    for i in (3, 11):
        (copy.root / copy.table["image"].iloc[i]).write_bytes(b"corrupt")
    # 2 of 24 (8 %) is over the default 5 % limit.
    with pytest.raises(UnreadableImagesError, match=r"2 of 24 images could not be read"):
        score_outdoor(copy.root, weights, options=_quiet())
    assert Dataset.open(copy.root).table["outdoor"].isna().all()  # table untouched
    result = score_outdoor(copy.root, weights, options=_quiet(max_unreadable=0.1))
    outdoor = Dataset.open(copy.root).table["outdoor"]
    assert sorted(result.skipped) == sorted(copy.table["photo_id"].iloc[[3, 11]])
    assert outdoor.isna().sum() == 2 and outdoor.iloc[[3, 11]].isna().all()


def test_outdoor_only_evaluation_works_on_a_scored_dataset(scene_world, tmp_path):
    from trigeo.evaluate.truth import Truth

    dataset, weights, _ = scene_world
    out = tmp_path / "scored"
    score_outdoor(dataset.root, weights, out=out, options=_quiet())
    scored = Dataset.open(out)
    truth = Truth.from_dataset(scored, split=None, outdoor_only=True)
    assert len(truth) == int((scored.table["outdoor"] >= 0.5).sum())
