"""Lightning pieces of M2/M3 training and the stage loop they share.

* :class:`HeadModule` trains any head whose batches are dicts with ``x``
  (inputs), ``y`` (cell, -1 = not a class) and, for albums, ``mask``; it
  logs ``val/acc`` (top-1 cell accuracy), ``val/loss`` (the stop photos'
  mean cross-entropy), the accuracy at 1/25/200/750/2500 km, their mean
  ``val/acc_mean`` and the median error. The config's ``monitor`` picks the
  early-stopping criterion among them (:data:`~trigeo.train.heads_config.MONITORS`).
* :class:`HeadDataModule` (in :mod:`trigeo.train.heads_loader`) reshuffles (or
  redraws albums) every epoch from a generator seeded by ``(seed, stage, epoch)``,
  so a resumed run replays it.
* :func:`fit_head_stages` runs the configured Adam stages, each a
  ``Trainer.fit`` with early stopping that ends on its best weights (each
  epoch's stop-photo metrics and the chosen epoch go to ``metrics.json``), with
  checkpoints under ``OUT/checkpoints/stage-<i>-<name>/`` and ``--resume``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from torch.nn import functional

import trigeo.runtime.quiet  # noqa: F401  (drops Lightning's hosted-logger advert)
from trigeo.errors import InputError
from trigeo.provenance import write_json_atomic
from trigeo.train.heads_loader import HeadDataModule
from trigeo.train.module import THRESHOLDS_KM, _haversine_km, gather_ragged
from trigeo.train.samplers import mix_seed

__all__ = ["HeadDataModule", "HeadModule", "fit_head_stages", "head_run_metrics"]

log = logging.getLogger("trigeo.train")
DONE_FILE = "done.safetensors"
METRICS_FILE = "metrics.json"
LOG_FILE = "train.log"


class HeadModule(lightning.LightningModule):
    """Trains an M2 or M3 network with Adam at one learning rate (one stage).

    Parameters
    ----------
    net
        ``net(x)`` (M2: ``(B, D) -> (B, N)``) or ``net(x, mask)`` (M3:
        ``(B, T, D), (B, T) -> (B, T, N)``) logits.
    lr
        Adam's learning rate.
    label_lat, label_lon
        Each cell's label point (geographic validation metrics).
    seed, stage_index
        The global RNG (dropout) is reseeded per epoch from these.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        lr: float,
        *,
        label_lat: np.ndarray,
        label_lon: np.ndarray,
        seed: int = 0,
        stage_index: int = 0,
    ) -> None:
        super().__init__()
        self.net, self.lr = net, float(lr)
        self.seed, self.stage_index = int(seed), int(stage_index)
        self.register_buffer("label_lat", torch.from_numpy(np.array(label_lat, dtype=np.float64)))
        self.register_buffer("label_lon", torch.from_numpy(np.array(label_lon, dtype=np.float64)))
        self.train_photos = 0
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _logits(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        """Per-photo logits and the batch's per-photo fields, padding removed."""
        if "mask" in batch:
            mask = batch["mask"]
            logits = self.net(batch["x"], mask)[mask]
            return logits, {k: v[mask] for k, v in batch.items() if k not in ("x", "mask")}
        return self.net(batch["x"]), {k: v for k, v in batch.items() if k != "x"}

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(
            mix_seed(self.seed, self.stage_index, self.current_epoch, self.global_rank)
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, rows = self._logits(batch)
        y = rows["y"]
        kept = y >= 0
        if not kept.any():
            return logits.sum() * 0.0
        if "w" in rows:  # per-photo weights (M3: albums weighted by their user's album count)
            w = rows["w"][kept].float()
            per_photo = functional.cross_entropy(logits[kept].float(), y[kept], reduction="none")
            loss = (per_photo * w).sum() / w.sum()
        else:
            loss = functional.cross_entropy(logits[kept].float(), y[kept])
        n = int(kept.sum())
        self.train_photos += n
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits, rows = self._logits(batch)
        # Only photos with a class are scored (M3: album-mates outside the stop part are
        # context, marked y = -1; M2's stop part holds no such photos).
        scored = rows["y"] >= 0
        logits, rows = logits[scored], {k: v[scored] for k, v in rows.items()}
        top = logits.float().argmax(1)
        distance = _haversine_km(
            self.label_lat[top], self.label_lon[top], rows["lat"].double(), rows["lon"].double()
        )
        y = rows["y"]
        loss = torch.zeros(len(y), dtype=torch.float64, device=logits.device)
        kept = y >= 0
        if kept.any():
            loss[kept] = functional.cross_entropy(
                logits[kept].float(), y[kept], reduction="none"
            ).double()
        self._val.append((distance, (top == y).double(), loss, kept.double()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        distance, correct, loss, kept = (torch.cat(p) for p in zip(*self._val, strict=True))
        self._val = []
        if self.trainer.world_size > 1:
            distance, correct, loss, kept = (
                gather_ragged(self, t) for t in (distance, correct, loss, kept)
            )
        n_kept = kept.sum().clamp_min(1)
        metrics = {
            "val/acc": (correct * kept).sum() / n_kept * 100,
            "val/loss": loss.sum() / n_kept,
            "val/median_km": distance.quantile(0.5),
        }
        for threshold in THRESHOLDS_KM:
            metrics[f"val/acc_{threshold:g}km"] = (distance <= threshold).double().mean() * 100
        # One number that sees every distance scale (an early-stopping choice).
        metrics["val/acc_mean"] = torch.stack(
            [metrics[f"val/acc_{t:g}km"] for t in THRESHOLDS_KM]
        ).mean()
        for name, value in metrics.items():
            self.log(name, value.float(), sync_dist=False, rank_zero_only=False)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.net.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.lr)


class _History(lightning.Callback):
    """Each validation epoch's ``val/*`` metrics, for ``metrics.json`` (rank 0's view)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []  # full precision; rounded when written

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        # Not on_validation_epoch_end: callbacks run that hook before the module logs.
        values = {
            k[len("val/") :]: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val/")
        }
        if values:
            self.epochs.append({"epoch": int(trainer.current_epoch), **values})


def _best_state(path: str) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}


def early_stopping_record(config: Any) -> dict[str, Any]:
    """What ``metrics.json`` says about the early-stopping criterion of a head config."""
    from trigeo.train.heads_config import MONITORS

    metric, mode = MONITORS[config.monitor]
    return {
        "criterion": config.monitor,
        "metric": metric,
        "mode": mode,
        "patience": config.patience,
        "on": f"the stop part ({config.stop_fraction:g} of the {config.train_split} photos)",
    }


def head_run_metrics(
    stage_metrics: list[dict[str, Any]], counts: dict[str, int], config: Any = None
) -> dict[str, Any]:
    """An M2/M3 run's ``metrics.json``: its stages, early stopping, photo counts and speed.

    ``best_val_acc`` is the stop photos' top-1 accuracy at the epoch the last
    stage ended on (whatever the criterion); ``early_stopping`` names the
    criterion when ``config`` is given.
    """
    seconds = sum(m["seconds"] for m in stage_metrics if m.get("seconds"))
    photos = sum(m["train_photos"] for m in stage_metrics if m.get("train_photos"))
    return {
        "stages": stage_metrics,
        **({"early_stopping": early_stopping_record(config)} if config is not None else {}),
        "best_val_acc": stage_metrics[-1]["best_val_acc"] if stage_metrics else None,
        "counts": counts,
        "train_seconds": round(seconds, 2),
        "train_photos_per_second": round(photos / seconds, 1) if seconds else None,
    }


def _chosen_epoch(
    history: _History, monitor: str, mode: str, score: float | None
) -> tuple[list[dict[str, float]], dict[str, float] | None]:
    """The history's rounded rows, and the row of the epoch the stage ended on (or None).

    The chosen row is the first epoch with the best criterion, as ModelCheckpoint keeps it
    (on a resumed stage, the epochs before the interruption were not seen by this process,
    and the row may be missing).
    """
    key = monitor[len("val/") :]
    rows = [{k: round(v, 5) for k, v in row.items()} for row in history.epochs]
    values = np.array([row.get(key, np.nan) for row in history.epochs])
    chosen = None
    if score is not None and np.isfinite(values).any():
        at = int(np.nanargmin(values) if mode == "min" else np.nanargmax(values))
        if abs(values[at] - score) <= 1e-6 * max(1.0, abs(score)):
            chosen = rows[at]
    return rows, chosen


def _fit_stage(
    module: HeadModule,
    datamodule: HeadDataModule,
    stage: Any,
    version: str,
    config: Any,
    out: Path,
    callbacks: list[Any],
    ckpt_path: str | None,
) -> tuple[Any, float]:
    """One stage's ``Trainer.fit`` (Lightning's messages to the run's log): trainer, seconds."""
    from trigeo.runtime.quiet import lightning_to_file
    from trigeo.runtime.trainer import make_trainer, run_loggers

    val_set = datamodule.val_set
    with lightning_to_file(out / "logs" / LOG_FILE):
        trainer = make_trainer(
            max_epochs=stage.max_epochs,
            accelerator=config.accelerator,
            devices=config.devices,
            num_nodes=config.num_nodes,
            strategy=config.strategy,
            precision=config.precision,
            callbacks=callbacks,
            logger=run_loggers(out, version),
            progress=bool(config.progress),
            reload_dataloaders_every_n_epochs=1,
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
            log_every_n_steps=10,
        )
        if len(val_set) < trainer.world_size:
            # Lightning stops a rank whose validation shard is empty with a traceback
            # on every rank; say it once, before any process starts.
            raise InputError(
                f"{len(val_set)} early-stopping items (stop_fraction="
                f"{config.stop_fraction:g}) for {trainer.world_size} processes: each "
                "process validates a share, so raise stop_fraction or use fewer devices",
                column="stop_fraction",
            )
        module.net.train()
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        seconds = time.perf_counter() - start
    return trainer, seconds


def _report_stage_end(
    report: Callable[[str], None], index: int, metrics: dict[str, Any], seconds: float
) -> None:
    """The stage's one line: epochs, time, speed, the best criterion and its top-1."""
    score, best_acc = metrics["best_score"], metrics["best_val_acc"]
    report(
        f"stage {index} {metrics['stage']}: {metrics['epochs']} epochs in {seconds:.0f}s "
        f"({metrics['photos_per_second']} photos/s), best {metrics['monitor']} "
        + (f"{score:.4g}" if score is not None else "n/a")
        + (f" at epoch {metrics['best_epoch']}" if metrics["best_epoch"] is not None else "")
        + ", val top-1 "
        + (f"{best_acc:.1f}%" if best_acc is not None else "n/a")
    )


def _run_head_stage(
    net: torch.nn.Module,
    config: Any,
    out: Path,
    index: int,
    stage: Any,
    module: HeadModule,
    datamodule: HeadDataModule,
    *,
    resume: bool,
    callbacks: Sequence[Any],
    report: Callable[[str], None],
) -> tuple[dict[str, Any], bool]:
    """Fit one stage, end on its best weights and save them: its metrics and is_global_zero."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from safetensors.torch import save_file

    from trigeo.train.heads_config import MONITORS

    monitor, mode = MONITORS[config.monitor]
    stage_dir = out / "checkpoints" / f"stage-{index}-{stage.name}"
    best = ModelCheckpoint(
        dirpath=stage_dir,
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
    )
    stop = EarlyStopping(monitor=monitor, mode=mode, patience=config.patience)
    history = _History()
    last = stage_dir / "last.ckpt"
    ckpt_path = str(last) if resume and last.exists() else None
    report(
        f"stage {index} {stage.name}: Adam lr {stage.lr}, at most {stage.max_epochs} epochs, "
        f"early stopping on {monitor} ({mode}, patience {config.patience})"
        + (f", resuming from {last}" if ckpt_path else "")
    )
    trainer, seconds = _fit_stage(
        module,
        datamodule,
        stage,
        f"stage-{index}-{stage.name}",
        config,
        out,
        [best, stop, history, *callbacks],
        ckpt_path,
    )
    if best.best_model_path:
        net.load_state_dict(_best_state(best.best_model_path))
    score = float(best.best_model_score) if best.best_model_score is not None else None
    rows, chosen = _chosen_epoch(history, monitor, mode, score)
    metrics: dict[str, Any] = {
        "stage": stage.name,
        "lr": stage.lr,
        "epochs": trainer.current_epoch,
        "monitor": monitor,
        "mode": mode,
        "best_score": score,
        "best_epoch": chosen["epoch"] if chosen else None,
        "best_val_acc": chosen.get("acc") if chosen else (score if monitor == "val/acc" else None),
        "best_val": chosen,
        "history": rows,
        "stopped_early": bool(stop.stopped_epoch),
        "seconds": round(seconds, 2),
        "train_photos": module.train_photos,
        "photos_per_second": round(module.train_photos / seconds, 1) if seconds else None,
    }
    if trainer.is_global_zero:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
            str(stage_dir / DONE_FILE),
        )
        write_json_atomic(stage_dir / METRICS_FILE, metrics)
    _report_stage_end(report, index, metrics, seconds)
    return metrics, bool(trainer.is_global_zero)


def fit_head_stages(
    net: torch.nn.Module,
    config: Any,
    out: Path,
    *,
    make_train: Callable[[np.random.Generator], Any],
    val_set: Any,
    collate: Callable[[list[Any]], dict[str, torch.Tensor]],
    val_collate: Callable[[list[Any]], dict[str, torch.Tensor]] | None = None,
    label_lat: np.ndarray,
    label_lon: np.ndarray,
    resume: bool,
    callbacks: Sequence[Any] = (),
    report: Callable[[str], None] = log.info,
) -> tuple[list[dict[str, Any]], bool]:
    """Run the configured Adam stages with early stopping on ``config.monitor``.

    Each stage starts from the previous stage's best weights and ends on its
    own best (the epoch with the best criterion on the stop part: top-1
    accuracy, loss or mean accuracy over the thresholds). A
    finished stage leaves ``done.safetensors`` and ``metrics.json``;
    ``resume`` reloads finished stages and continues an interrupted one from
    its ``last.ckpt``.

    Returns
    -------
    stage_metrics, is_global_zero
    """
    from safetensors.torch import load_file

    results: list[dict[str, Any]] = []
    is_zero = True
    for index, stage in enumerate(config.stages):
        stage_dir = out / "checkpoints" / f"stage-{index}-{stage.name}"
        if (stage_dir / DONE_FILE).exists():
            net.load_state_dict(load_file(str(stage_dir / DONE_FILE)))
            if (stage_dir / METRICS_FILE).exists():
                results.append(json.loads((stage_dir / METRICS_FILE).read_text("utf-8")))
            report(f"stage {index} {stage.name}: already finished, weights reloaded")
            continue
        module = HeadModule(
            net,
            stage.lr,
            label_lat=label_lat,
            label_lon=label_lon,
            seed=config.seed,
            stage_index=index,
        )
        datamodule = HeadDataModule(
            make_train,
            val_set,
            collate,
            batch_size=config.batch_size,
            seed=config.seed,
            stage_index=index,
            num_workers=config.num_workers,
            val_collate=val_collate,
        )
        metrics, is_zero = _run_head_stage(
            net,
            config,
            out,
            index,
            stage,
            module,
            datamodule,
            resume=resume,
            callbacks=callbacks,
            report=report,
        )
        results.append(metrics)
    return results, is_zero
