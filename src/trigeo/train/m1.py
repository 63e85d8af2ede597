"""Train, resume and calibrate M1 (the study's procedure on Lightning).

:func:`prepare_m1` does every check that can fail on bad input *before* any
training starts (dataset, split, mesh fit, backbone name, weights), then
:func:`train_m1` runs the configured stages, each a ``Trainer.fit`` that
starts from the previous stage's weights and checkpoints every epoch under
``MODEL_DIR/checkpoints/stage-<i>-<name>/``. A finished stage leaves
``done.safetensors``; ``--resume`` skips finished stages and continues the
interrupted one from its last epoch checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigeo.data.table import Dataset
from trigeo.errors import ArtifactError, InputError
from trigeo.provenance import atomic_path, hash_arrays, hash_file, write_json_atomic

__all__ = ["PreparedRun", "calibrate_m1", "prepare_m1", "set_cpu_threads", "train_m1"]

log = logging.getLogger("trigeo.train")

STATE_FILE = "train_state.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
DONE_FILE = "done.safetensors"


@dataclass
class PreparedRun:
    """Everything validated and resolved before training starts."""

    dataset: Dataset
    mesh: Any
    mesh_path: Path
    net: Any
    data_config: dict[str, Any]
    train_images: np.ndarray
    train_labels: np.ndarray
    train_photo_ids: np.ndarray
    n_train_total: int
    n_dropped: int
    val_images: np.ndarray | None
    val_labels: np.ndarray | None
    val_lat: np.ndarray | None
    val_lon: np.ndarray | None
    label_lat: np.ndarray
    label_lon: np.ndarray
    weights_report: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def set_cpu_threads(threads: int | None, num_workers: int) -> int:
    """Set torch's intra-op threads; ``None`` leaves one core per DataLoader worker.

    OpenMP threads that spin while loader workers hold the same cores slow a
    CPU run several-fold, so by default the compute threads plus the workers
    never exceed the cores.
    """
    import os

    import torch

    if threads is None:
        threads = max(1, (os.cpu_count() or 1) - num_workers)
    torch.set_num_threads(int(threads))
    return int(threads)


def _load_mesh(path: Path) -> Any:
    from trigeo.mesh import DelaunayMesh

    if not path.exists():
        raise InputError("mesh file not found", source=path)
    return DelaunayMesh.load(path)


def prepare_m1(data: str | Path, mesh_path: str | Path, config: Any) -> PreparedRun:
    """Validate the inputs of an M1 run and resolve labels, splits and the network.

    Raises
    ------
    InputError
        Empty split; mesh whose kept cells miss most training photos, or
        whose hash differs from ``config.mesh_hash``; unknown backbone (with
        close names); weights that do not fit the backbone.
    """
    from trigeo.models.m1 import M1Net, check_backbone, load_backbone_weights, resolve_image_config

    config.validate()
    check_backbone(config.backbone)
    dataset = Dataset.open(data)
    train = dataset.photos(config.train_split)
    mesh_path = Path(mesh_path)
    mesh = _load_mesh(mesh_path)
    if config.mesh_hash and str(config.mesh_hash) != str(mesh.mesh_hash):
        raise InputError(
            f"mesh hash {mesh.mesh_hash} differs from mesh_hash {config.mesh_hash} recorded in "
            "the config; pass the mesh the config was made for",
            source=mesh_path,
        )
    cells = np.asarray(mesh.locate(train["lat"].to_numpy(), train["lon"].to_numpy()))
    dropped = cells < 0
    n_total, n_dropped = len(cells), int(dropped.sum())
    if n_dropped == n_total or n_dropped / n_total > config.max_dropped_fraction:
        raise InputError(
            f"{n_dropped} of {n_total} {config.train_split!r} photos "
            f"({100 * n_dropped / n_total:.1f}%) fall outside the mesh's kept cells "
            f"(limit max_dropped_fraction={config.max_dropped_fraction}); was the mesh built "
            "from this dataset's training coordinates?",
            source=mesh_path,
        )
    keep = ~dropped
    notes = [
        f"{config.train_split}: {n_total} photos, {n_dropped} in dropped cells excluded, "
        f"{int(keep.sum())} used over {mesh.n_cells_} cells"
    ]
    net = M1Net(config.backbone, int(mesh.n_cells_), drop_rate=config.drop_rate)
    weights_report = None
    if config.weights:
        weights_report = load_backbone_weights(net.backbone, config.weights)
        notes.append(
            f"weights {config.weights}: {weights_report['loaded']} tensors loaded, "
            f"{len(weights_report['missing'])} missing {weights_report['missing'][:5]}, "
            f"{len(weights_report['unexpected'])} unexpected {weights_report['unexpected'][:5]}, "
            f"{len(weights_report['dropped'])} classifier tensors dropped"
        )
    data_config = resolve_image_config(net.backbone, config.image_size)
    label_lat, label_lon = (
        np.asarray(a, dtype=np.float64) for a in mesh.centroids(kind=config.label)
    )

    val_images = val_labels = val_lat = val_lon = None
    if config.val_split:
        if config.val_split in set(dataset.table["split"]):
            val = dataset.photos(config.val_split)
            if config.val_max_photos and len(val) > config.val_max_photos:
                rng = np.random.default_rng(config.seed)
                val = val.iloc[np.sort(rng.choice(len(val), config.val_max_photos, replace=False))]
            val_lat, val_lon = val["lat"].to_numpy(), val["lon"].to_numpy()
            val_labels = np.asarray(mesh.locate(val_lat, val_lon), dtype=np.int64)
            val_images = val["image"].to_numpy()
            notes.append(f"validation on {len(val)} {config.val_split!r} photos")
        else:
            notes.append(f"no {config.val_split!r} photos: training without validation")
    return PreparedRun(
        dataset=dataset,
        mesh=mesh,
        mesh_path=mesh_path,
        net=net,
        data_config=data_config,
        train_images=train["image"].to_numpy()[keep],
        train_labels=cells[keep].astype(np.int64),
        train_photo_ids=train["photo_id"].to_numpy()[keep],
        n_train_total=n_total,
        n_dropped=n_dropped,
        val_images=val_images,
        val_labels=val_labels,
        val_lat=val_lat,
        val_lon=val_lon,
        label_lat=label_lat,
        label_lon=label_lon,
        weights_report=weights_report,
        notes=notes,
    )


def launch_rank() -> int:
    """Global rank of this process as the launcher set it (0 when not distributed).

    Lightning's DDP launcher re-runs the command in each child with
    ``LOCAL_RANK``/``NODE_RANK`` set; torchrun and SLURM set ``RANK``/``SLURM_PROCID``.
    Only rank 0 checks and writes the run state; the others follow it.
    """
    import os

    for name in ("RANK", "SLURM_PROCID"):
        if name in os.environ:
            return int(os.environ[name])
    local, node = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("NODE_RANK", 0))
    return local + node * 1000 if (local or node) else 0


def _check_state(out: Path, run: PreparedRun, config: Any, resume: bool) -> dict[str, Any]:
    from trigeo.train.config import config_to_dict

    state = {
        "dataset_sha256": run.dataset.hash,
        "mesh_hash": str(run.mesh.mesh_hash),
        "backbone": config.backbone,
        "label": config.label,
        "seed": config.seed,
        "n_stages": len(config.stages),
    }
    path = out / STATE_FILE
    if launch_rank() != 0:
        return state
    if path.exists():
        previous = json.loads(path.read_text("utf-8"))
        if not resume:
            raise InputError(
                f"{out} already holds a training run; pass --resume to continue it or choose "
                "another --out"
            )
        changed = [k for k in state if previous.get(k) != state[k]]
        if changed:
            raise InputError(
                f"cannot resume: {', '.join(changed)} differ from the interrupted run "
                f"({', '.join(f'{k}={previous.get(k)!r}' for k in changed)})",
                source=path,
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, state)
    import yaml

    (out / CONFIG_FILE).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return state


def _feature_cache(out: Path, run: PreparedRun, config: Any, progress: bool) -> tuple[Any, Any]:
    """Backbone features of the train (and val) photos, computed once and cached on disk."""
    from trigeo.data.loading import FeatureDataset, PhotoDataset, build_transform
    from trigeo.predict.engine import run_inference

    weights = hash_file(config.weights) if config.weights else "random-init"
    # Random-init backbones differ per seed; pretrained ones do not.
    seed = "" if config.weights else f"-seed{config.seed}"
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
    for name, images, labels in (
        ("train", run.train_images, run.train_labels),
        ("val", run.val_images, run.val_labels),
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
            batch_size=config.eval_batch_size or config.batch_size * 2,
            num_workers=config.num_workers,
            accelerator=config.accelerator,
            devices=1,
            precision=config.precision,
            progress=progress,
            work_dir=out,
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


def train_m1(
    data: str | Path,
    mesh_path: str | Path,
    out: str | Path,
    config: Any,
    *,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    report: Callable[[str], None] = log.info,
) -> Any:
    """Train M1 with the configured stages and save the model directory.

    Parameters
    ----------
    data, mesh_path
        Dataset directory and mesh file.
    out
        Model directory (checkpoints and logs go inside it).
    config
        A :class:`~trigeo.train.config.TrainConfig`.
    resume
        Continue an interrupted run in ``out``.
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
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from safetensors.torch import load_file, save_file

    from trigeo.data.loading import PhotoDataset, build_transform
    from trigeo.models.m1 import M1Model
    from trigeo.predict.engine import trainer_precision
    from trigeo.train.config import config_to_dict
    from trigeo.train.module import M1DataModule, M1Module

    out = Path(out)
    set_cpu_threads(config.cpu_threads, config.num_workers)
    lightning.seed_everything(config.seed, workers=True, verbose=False)
    run = prepare_m1(data, mesh_path, config)
    _check_state(out, run, config, resume)
    for note in run.notes:
        report(note)
    progress = bool(config.progress)
    if config.freeze_backbone:
        run.net.freeze_backbone()
        train_set, val_set = _feature_cache(out, run, config, progress)
    else:
        aug = config.augment
        train_tf = build_transform(
            run.data_config,
            train=True,
            scale=aug.scale,
            hflip=aug.hflip,
            color_jitter=aug.color_jitter,
        )
        eval_tf = build_transform(run.data_config, train=False)
        train_set = PhotoDataset(run.dataset.root, run.train_images, run.train_labels, train_tf)
        val_set = (
            None
            if run.val_images is None
            else PhotoDataset(run.dataset.root, run.val_images, run.val_labels, eval_tf)
        )

    stage_metrics: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    total_images, total_seconds = 0, 0.0
    epoch_offset = 0
    is_zero = True
    for index, stage in enumerate(config.stages):
        epochs = config.stage_epochs(stage)
        stage_dir = out / "checkpoints" / f"stage-{index}-{stage.name}"
        done = stage_dir / DONE_FILE
        offset = epoch_offset
        if stage.sampling == "balanced":
            epoch_offset += epochs
        if done.exists():
            run.net.load_state_dict(load_file(str(done)))
            saved = stage_dir / METRICS_FILE
            if saved.exists():
                stage_metrics.append(json.loads(saved.read_text("utf-8")))
            report(f"stage {index} {stage.name}: already finished, weights reloaded")
            continue
        module = M1Module(
            run.net,
            stage,
            label_lat=run.label_lat,
            label_lon=run.label_lon,
            val_lat=run.val_lat,
            val_lon=run.val_lon,
            features_mode=config.freeze_backbone,
            seed=config.seed,
            stage_index=index,
        )
        datamodule = M1DataModule(
            config,
            train_set,
            val_set,
            run.train_labels,
            int(run.mesh.n_cells_),
            stage,
            index,
            offset,
        )
        checkpoint = ModelCheckpoint(
            dirpath=stage_dir,
            filename="epoch-{epoch:03d}",
            save_last=True,
            save_top_k=config.keep_checkpoints,
            monitor="epoch" if config.keep_checkpoints > 0 else None,
            mode="max",
            every_n_epochs=1,
        )
        version = f"stage-{index}-{stage.name}"
        trainer = lightning.Trainer(
            max_epochs=epochs,
            accelerator=config.accelerator,
            devices=config.devices,
            num_nodes=config.num_nodes,
            strategy=config.strategy,
            precision=trainer_precision(config.precision, config.accelerator),
            callbacks=[checkpoint, *callbacks],
            logger=[
                CSVLogger(out / "logs", name="csv", version=version),
                TensorBoardLogger(out / "logs", name="tensorboard", version=version),
            ],
            enable_progress_bar=progress,
            enable_model_summary=progress and index == 0,
            log_every_n_steps=config.log_every_n_steps,
            reload_dataloaders_every_n_epochs=1,
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
            limit_val_batches=1.0 if val_set is not None else 0,
        )
        last = stage_dir / "last.ckpt"
        ckpt_path = str(last) if resume and last.exists() else None
        if ckpt_path:
            report(f"stage {index} {stage.name}: resuming from {last}")
        report(
            f"stage {index} {stage.name}: {stage.optimizer}, lr {stage.lr}, {epochs} epochs, "
            + (f"beta {stage.beta}" if stage.sampling == "balanced" else "full data")
        )
        run.net.train()  # inference (feature caching) may have left it in eval mode
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        seconds = time.perf_counter() - start
        is_zero = trainer.is_global_zero
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith(("val/", "train/"))
        }
        metrics.update(
            stage=stage.name,
            epochs=epochs,
            seconds=round(seconds, 2),
            train_images=module.train_images,
            images_per_second=round(module.train_images / seconds, 1) if seconds else None,
        )
        total_images += module.train_images
        total_seconds += seconds
        skipped.update({str(run.train_photo_ids[i]): e for i, e in module.skipped.items()})
        if is_zero:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in run.net.state_dict().items()},
                str(done),
            )
            write_json_atomic(stage_dir / METRICS_FILE, metrics)
        stage_metrics.append(metrics)
        report(
            f"stage {index} {stage.name}: {seconds:.0f}s, "
            f"{metrics['images_per_second']} images/s"
            + (
                f", val acc@750km {metrics['val/acc_750km']:.1f}%"
                if "val/acc_750km" in metrics
                else ""
            )
        )
        if trainer.world_size > 1:
            trainer.strategy.barrier()
    if config.freeze_backbone:
        for parameter in run.net.parameters():
            parameter.requires_grad_(True)
    final = dict(stage_metrics[-1]) if stage_metrics else {}
    metrics = {
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
    if skipped:
        report(f"{len(skipped)} unreadable training images skipped (see metrics.json)")
    model = M1Model(
        run.net.cpu().eval(),
        run.mesh,
        label_kind=config.label,
        data_config=run.data_config,
        config=config_to_dict(config),
        metrics=metrics,
        provenance={
            "dataset": str(run.dataset.root),
            "seed": config.seed,
            "weights_report": run.weights_report,
            "torch_version": torch.__version__,
        },
    )
    if is_zero:
        model.save(out, run.mesh_path, inputs={"dataset": run.dataset.hash})
        write_json_atomic(out / METRICS_FILE, metrics)
        report(f"saved {model.model_id} to {out}")
    return model


def calibrate_m1(
    model_dir: str | Path,
    data: str | Path,
    *,
    split: str = "heads",
    max_photos: int | None = 20000,
    batch_size: int = 128,
    num_workers: int = 2,
    accelerator: str = "auto",
    devices: int | str = 1,
    seed: int = 0,
    progress: bool = True,
) -> float:
    """Fit a softmax temperature on a held-out split and store it in the model dir.

    Uses the photos of ``split`` that fall in kept cells (never ``train``).

    Returns
    -------
    float
        The temperature; ``trigeo predict`` applies it from then on.
    """
    from trigeo.data.loading import PhotoDataset, build_transform
    from trigeo.evaluate.calibration import fit_temperature
    from trigeo.models.m1 import M1Model
    from trigeo.predict.engine import run_inference

    model = M1Model.load(model_dir)
    train_split = model.config.get("train_split", "train")
    if split == train_split:
        raise InputError(f"calibrate on held-out photos, not the training split {split!r}")
    dataset = Dataset.open(data)
    rows = dataset.photos(split)
    cells = np.asarray(model.mesh.locate(rows["lat"].to_numpy(), rows["lon"].to_numpy()))
    rows, cells = rows[cells >= 0], cells[cells >= 0]
    if len(rows) == 0:
        raise InputError(
            f"no {split!r} photo falls in a kept cell of the model's mesh", source=data
        )
    if max_photos and len(rows) > max_photos:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), max_photos, replace=False))
        rows, cells = rows.iloc[pick], cells[pick]
    transform = build_transform(model.data_config, train=False)
    result = run_inference(
        model.net,
        PhotoDataset(dataset.root, rows["image"].to_numpy(), cells, transform),
        mode="logits",
        batch_size=batch_size,
        num_workers=num_workers,
        accelerator=accelerator,
        devices=devices,
        progress=progress,
    )
    if result is None:
        raise ArtifactError("calibration ran on a non-zero rank")
    temperature = fit_temperature(result["logits"], cells[result["index"]])
    model.save_temperature(
        temperature, dataset=dataset.hash, split=split, photos=len(result["index"])
    )
    return temperature
