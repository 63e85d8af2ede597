"""One stage of M1 training: a ``Trainer.fit`` that saves the stage's weights.

:func:`run_stage` is called by :func:`~trigeo.train.m1.train_m1` for every
stage not finished yet (and importable from :mod:`trigeo.train.m1`). It
checkpoints every epoch under ``MODEL_DIR/checkpoints/stage-<i>-<name>/``,
continues from ``last.ckpt`` on ``--resume`` and leaves ``done.safetensors``
and the stage's ``metrics.json`` when it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trigeo.provenance import write_json_atomic
from trigeo.train.prepare import PreparedRun

__all__ = ["DONE_FILE", "LOG_FILE", "METRICS_FILE", "run_stage"]

log = logging.getLogger("trigeo.train")

METRICS_FILE = "metrics.json"
DONE_FILE = "done.safetensors"
LOG_FILE = "train.log"


def _stage_module(run: PreparedRun, config: Any, stage: Any, index: int) -> Any:
    """The stage's :class:`~trigeo.train.module.M1Module` around the run's network."""
    from trigeo.train.module import M1Module

    return M1Module(
        run.net,
        stage,
        label_lat=run.label_lat,
        label_lon=run.label_lon,
        val_lat=run.val_lat,
        val_lon=run.val_lon,
        features_mode=config.freeze_backbone,
        seed=config.seed,
        stage_index=index,
        max_unreadable=config.max_unreadable_fraction,
        head_label_points=run.head_label_points if run.n_heads > 1 else None,
        head_names=run.head_names if run.n_heads > 1 else None,
        label_smoothing=config.label_smoothing,
    )


def _stage_checkpoint(config: Any, stage_dir: Path) -> Any:
    """Every epoch's checkpoint (``last.ckpt`` and the ``keep_checkpoints`` latest)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    return ModelCheckpoint(
        dirpath=stage_dir,
        filename="epoch-{epoch:03d}",
        save_last=True,
        save_top_k=config.keep_checkpoints,
        monitor="epoch" if config.keep_checkpoints > 0 else None,
        mode="max",
        every_n_epochs=1,
    )


def _fit_stage(
    run: PreparedRun,
    config: Any,
    index: int,
    epochs: int,
    version: str,
    module: Any,
    datamodule: Any,
    out: Path,
    checkpoint: Any,
    callbacks: Sequence[Any],
    ckpt_path: str | None,
) -> tuple[Any, float]:
    """One stage's ``Trainer.fit`` (Lightning's messages to the run's log): trainer, seconds."""
    from trigeo.runtime.quiet import lightning_to_file, progress_bar
    from trigeo.runtime.trainer import make_trainer, run_loggers

    progress = bool(config.progress)
    with lightning_to_file(out / "logs" / LOG_FILE):
        trainer = make_trainer(
            max_epochs=epochs,
            accelerator=config.accelerator,
            devices=config.devices,
            num_nodes=config.num_nodes,
            strategy=config.strategy,
            precision=config.precision,
            callbacks=[checkpoint, *progress_bar(progress), *callbacks],
            logger=run_loggers(out, version),
            progress=progress,
            log_every_n_steps=config.log_every_n_steps,
            reload_dataloaders_every_n_epochs=1,
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
            limit_val_batches=1.0 if datamodule.val_set is not None else 0,
        )
        if index == 0:
            from lightning.pytorch.utilities.model_summary import ModelSummary

            log.info("model summary\n%s", ModelSummary(module, max_depth=2))
        run.net.train()  # inference (feature caching) may have left it in eval mode
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        seconds = time.perf_counter() - start
    return trainer, seconds


def _run_speed(trainer: Any, images: int, seconds: float) -> tuple[int, float]:
    """Training images and seconds of the whole run (every rank's images, the slowest rank)."""
    if trainer.world_size > 1:
        # Every rank trained on its own shard: the run's speed is their sum over the slowest
        # rank's time, and only rank 0 reports it (one line, not one per process).
        import torch

        images = int(trainer.strategy.reduce(torch.tensor(float(images)), reduce_op="sum"))
        seconds = float(trainer.strategy.reduce(torch.tensor(seconds), reduce_op="max"))
    return images, seconds


def _report_stage_end(
    report: Callable[[str], None], index: int, metrics: dict[str, Any], seconds: float
) -> None:
    """One line that fits 80 columns: time, speed, and the validation headline."""
    report(
        f"stage {index} {metrics['stage']}: {seconds:.0f} s, "
        f"{metrics['images_per_second'] or 0:.0f} img/s"
        + (
            f"; val {metrics['val/acc_750km']:.1f}% @750 km, "
            f"median {metrics['val/median_km']:,.0f} km"
            if "val/acc_750km" in metrics
            else ""
        )
    )


def run_stage(
    run: PreparedRun,
    config: Any,
    index: int,
    epoch_offset: int,
    train_set: Any,
    val_set: Any,
    out: Path,
    *,
    resume: bool,
    callbacks: Sequence[Any],
    report: Callable[[str], None],
) -> tuple[dict[str, Any], dict[int, str], bool]:
    """Run one stage of the procedure as a ``Trainer.fit`` and save its weights.

    Parameters
    ----------
    index, epoch_offset
        The stage's position in ``config.stages`` and the index of its first
        epoch among the run's balanced epochs (the epoch size grows with it).

    Returns
    -------
    metrics, skipped, is_global_zero
        The stage's metrics (also written next to its checkpoints), the
        unreadable training images (dataset position -> error), and whether
        this process is rank 0.
    """
    from safetensors.torch import save_file

    from trigeo.train.module import M1DataModule

    stage = config.stages[index]
    epochs = config.stage_epochs(stage)
    stage_dir = out / "checkpoints" / f"stage-{index}-{stage.name}"
    module = _stage_module(run, config, stage, index)
    datamodule = M1DataModule(
        config,
        train_set,
        val_set,
        run.train_labels,
        int(run.mesh.n_cells_),
        stage,
        index,
        epoch_offset,
    )
    checkpoint = _stage_checkpoint(config, stage_dir)
    last = stage_dir / "last.ckpt"
    ckpt_path = str(last) if resume and last.exists() else None
    if ckpt_path:
        report(f"stage {index} {stage.name}: resuming from {last}")
    report(
        f"stage {index} {stage.name}: {stage.optimizer}, lr {stage.lr}, {epochs} epochs, "
        + (f"beta {stage.beta}" if stage.sampling == "balanced" else "full data")
    )
    trainer, seconds = _fit_stage(
        run,
        config,
        index,
        epochs,
        f"stage-{index}-{stage.name}",
        module,
        datamodule,
        out,
        checkpoint,
        callbacks,
        ckpt_path,
    )
    metrics: dict[str, Any] = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "train/"))
    }
    images, seconds = _run_speed(trainer, module.train_images, seconds)
    metrics.update(
        stage=stage.name,
        epochs=epochs,
        seconds=round(seconds, 2),
        train_images=images,
        images_per_second=round(images / seconds, 1) if seconds else None,
    )
    if trainer.is_global_zero:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in run.net.state_dict().items()},
            str(stage_dir / DONE_FILE),
        )
        write_json_atomic(stage_dir / METRICS_FILE, metrics)
        _report_stage_end(report, index, metrics, seconds)
    if trainer.world_size > 1:
        trainer.strategy.barrier()
    return metrics, dict(module.skipped), bool(trainer.is_global_zero)
