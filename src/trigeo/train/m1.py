"""Train and resume M1 (the study's procedure on Lightning).

:func:`~trigeo.train.prepare.prepare_m1` does every check that can fail on
bad input *before* any training starts, then :func:`train_m1` runs the
configured stages (:func:`~trigeo.train.m1_stage.run_stage`), each a
``Trainer.fit`` that starts from the previous stage's weights and checkpoints
every epoch under ``MODEL_DIR/checkpoints/stage-<i>-<name>/``. A finished
stage leaves ``done.safetensors``; ``--resume`` skips finished stages and
continues the interrupted one from its last epoch checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trigeo.provenance import atomic_path, hash_arrays, hash_file, write_json_atomic
from trigeo.runtime.devices import set_cpu_threads
from trigeo.train.m1_stage import DONE_FILE, LOG_FILE, METRICS_FILE, run_stage
from trigeo.train.prepare import PreparedRun, prepare_m1
from trigeo.train.state import check_run_state

__all__ = ["default_name", "run_stage", "train_m1"]

log = logging.getLogger("trigeo.train")


def _check_state(out: Path, run: PreparedRun, config: Any, resume: bool) -> dict[str, Any]:
    from trigeo.train.config import config_to_dict

    state = {
        "dataset_sha256": run.dataset.hash,
        "mesh_hash": str(run.mesh.mesh_hash),
        **(
            {
                "head_mesh_hashes": {
                    n: str(m.mesh_hash) for n, m in zip(run.head_names, run.meshes, strict=True)
                }
            }
            if run.n_heads > 1
            else {}
        ),
        "backbone": config.backbone,
        "label": config.label,
        "seed": config.seed,
        "n_stages": len(config.stages),
    }
    check_run_state(out, state, config_to_dict(config), resume)  # rank 0 only, inside
    return state


def _feature_cache(out: Path, run: PreparedRun, config: Any, progress: bool) -> tuple[Any, Any]:
    """Backbone features of the train (and val) photos, computed once and cached on disk."""
    from trigeo.data.loading import FeatureDataset, PhotoDataset, build_transform
    from trigeo.runtime.inference import run_inference
    from trigeo.runtime.options import InferenceOptions

    weights = hash_file(config.weights) if config.weights else run.init
    # Random-init backbones differ per seed; pretrained ones do not.
    seed = "" if run.init != "random" else f"-seed{config.seed}"
    key = hash_arrays(
        np.frombuffer(
            json.dumps(
                [run.dataset.hash, config.backbone, weights, seed, run.data_config], sort_keys=True
            ).encode(),
            dtype=np.uint8,
        )
    )[:16]
    cache = out / "features"
    transform = build_transform(run.data_config, train=False)
    sets = []
    train_labels, val_labels = _labels(run)
    for name, images, labels in (
        ("train", run.train_images, train_labels),
        ("val", run.val_images, val_labels),
    ):
        if images is None:
            sets.append(None)
            continue
        path = cache / f"{name}-{config.backbone}-{key}.npz"
        ids_hash = hash_arrays(np.asarray(images).astype(str))
        if path.exists():
            stored = np.load(path)
            if str(stored["images_sha256"]) == ids_hash:
                sets.append(FeatureDataset(stored["features"], labels, stored["valid"]))
                log.info("features: reusing cache %s", path)
                continue
        result = run_inference(
            run.net,
            PhotoDataset(run.dataset.root, images, labels, transform),
            mode="embed",
            options=InferenceOptions(
                batch_size=config.eval_batch_size or config.batch_size * 2,
                num_workers=config.num_workers,
                accelerator=config.accelerator,
                devices=1,
                precision=config.precision,
                progress=progress,
            ),
            work_dir=out,
            log_file=out / "logs" / LOG_FILE,
        )
        assert result is not None
        features = np.zeros((len(images), run.net.num_features), dtype=np.float32)
        valid = np.zeros(len(images), dtype=bool)
        features[result["index"]] = result["features"]
        valid[result["index"]] = True
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, features=features, valid=valid, images_sha256=ids_hash)
        sets.append(FeatureDataset(features, labels, valid))
    return sets[0], sets[1]


def default_name(mesh_path: str | Path | Sequence[str | Path]) -> str:
    """Display name of an M1: ``M1 <mesh file stem>``, or ``M1`` with several heads.

    A multi-head model's predictions files are named per head (``M1 coarse``).
    """
    if isinstance(mesh_path, (str, Path)):
        return f"M1 {Path(mesh_path).stem}"
    paths = list(mesh_path)
    return f"M1 {Path(paths[0]).stem}" if len(paths) == 1 else "M1"


def _labels(run: PreparedRun) -> tuple[Any, Any]:
    """Training and validation labels: one column per head for a multi-head run."""
    if run.n_heads > 1:
        return run.head_labels, run.val_head_labels
    return run.train_labels, run.val_labels


def _datasets(out: Path, run: PreparedRun, config: Any) -> tuple[Any, Any]:
    """Train and validation datasets: cached features, or photos with their transforms."""
    from trigeo.data.loading import PhotoDataset, build_transform

    if config.freeze_backbone:
        run.net.freeze_backbone()
        return _feature_cache(out, run, config, bool(config.progress))
    aug = config.augment
    train_tf = build_transform(
        run.data_config,
        train=True,
        scale=aug.scale,
        hflip=aug.hflip,
        color_jitter=aug.color_jitter,
    )
    eval_tf = build_transform(run.data_config, train=False)
    train_labels, val_labels = _labels(run)
    train_set = PhotoDataset(run.dataset.root, run.train_images, train_labels, train_tf)
    val_set = (
        None
        if run.val_images is None
        else PhotoDataset(run.dataset.root, run.val_images, val_labels, eval_tf)
    )
    return train_set, val_set


def train_m1(
    data: str | Path,
    mesh_path: str | Path | Sequence[str | Path],
    out: str | Path,
    config: Any,
    *,
    resume: bool = False,
    name: str | None = None,
    allow_eval_in_mesh: bool = False,
    callbacks: Sequence[Any] = (),
    report: Callable[[str], None] = log.info,
) -> Any:
    """Train M1 with the configured stages and save the model directory.

    Parameters
    ----------
    data, mesh_path
        Dataset directory and mesh file; several mesh files train one head
        per mesh on one shared backbone, the loss summed over the heads (see
        :func:`~trigeo.train.prepare.prepare_m1` for which mesh drives the
        class-balanced sampling).
    out
        Model directory (checkpoints and logs go inside it; Lightning's own
        messages go to ``out/logs/train.log``).
    config
        A :class:`~trigeo.train.config.TrainConfig`.
    resume
        Continue an interrupted run in ``out``.
    name
        Short display name for reports (default ``M1 <mesh file stem>``).
    allow_eval_in_mesh
        Train on a mesh built partly from this dataset's evaluation photos.
    callbacks
        Extra Lightning callbacks (e.g. for tests).
    report
        Receives one-line progress notes (counts, excluded photos, timings).

    Returns
    -------
    M1Model
        The trained model (saved in ``out`` by rank 0).
    """
    import lightning
    from safetensors.torch import load_file

    out = Path(out)
    set_cpu_threads(config.cpu_threads, config.num_workers)
    lightning.seed_everything(config.seed, workers=True, verbose=False)
    run = prepare_m1(data, mesh_path, config, allow_eval_in_mesh=allow_eval_in_mesh)
    _check_state(out, run, config, resume)
    for note in run.notes:
        report(note)
    train_set, val_set = _datasets(out, run, config)

    stage_metrics: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    total_images, total_seconds = 0, 0.0
    epoch_offset = 0
    is_zero = True
    for index, stage in enumerate(config.stages):
        offset = epoch_offset
        if stage.sampling == "balanced":
            epoch_offset += config.stage_epochs(stage)
        stage_dir = out / "checkpoints" / f"stage-{index}-{stage.name}"
        if (stage_dir / DONE_FILE).exists():
            run.net.load_state_dict(load_file(str(stage_dir / DONE_FILE)))
            saved = stage_dir / METRICS_FILE
            if saved.exists():
                stage_metrics.append(json.loads(saved.read_text("utf-8")))
            report(f"stage {index} {stage.name}: already finished, weights reloaded")
            continue
        metrics, stage_skipped, is_zero = run_stage(
            run,
            config,
            index,
            offset,
            train_set,
            val_set,
            out,
            resume=resume,
            callbacks=callbacks,
            report=report,
        )
        stage_metrics.append(metrics)
        total_images += metrics["train_images"]
        total_seconds += metrics["seconds"]
        skipped.update({str(run.train_photo_ids[i]): e for i, e in stage_skipped.items()})
    if config.freeze_backbone:
        for parameter in run.net.parameters():
            parameter.requires_grad_(True)
    metrics = _run_metrics(run, stage_metrics, skipped, total_images, total_seconds)
    if skipped:
        report(f"{len(skipped)} unreadable training images skipped (see metrics.json)")
    model = _model(run, config, metrics, name or default_name(run.mesh_paths))
    if is_zero:
        model.save(
            out,
            run.mesh_paths,
            inputs={"dataset": run.dataset.hash},
        )
        write_json_atomic(out / METRICS_FILE, metrics)
        report(f"saved {model.name} ({model.model_id}) to {out}")
    return model


def _run_metrics(
    run: PreparedRun,
    stage_metrics: list[dict[str, Any]],
    skipped: dict[str, str],
    total_images: int,
    total_seconds: float,
) -> dict[str, Any]:
    final = dict(stage_metrics[-1]) if stage_metrics else {}
    return {
        "final": {k: v for k, v in final.items() if k.startswith("val/")},
        "stages": stage_metrics,
        "train_photos": run.n_train_total,
        "excluded_dropped_cells": run.n_dropped,
        "used_photos": len(run.train_labels),
        "skipped_images": len(skipped),
        "skipped_examples": dict(list(skipped.items())[:20]),
        "train_seconds": round(total_seconds, 2),
        "train_images_per_second": round(total_images / total_seconds, 1)
        if total_seconds
        else None,
    }


def _model(run: PreparedRun, config: Any, metrics: dict[str, Any], name: str) -> Any:
    import torch

    from trigeo.models.m1 import M1Model
    from trigeo.train.config import config_to_dict

    return M1Model(
        run.net.cpu().eval(),
        run.meshes,
        label_kind=config.label,
        data_config=run.data_config,
        config=config_to_dict(config),
        metrics=metrics,
        name=name,
        provenance={
            "dataset": str(run.dataset.root),
            "seed": config.seed,
            "init": run.init,
            "weights_report": run.weights_report,
            "torch_version": torch.__version__,
        },
    )
