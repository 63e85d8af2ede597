"""Train M3: a bidirectional LSTM over user albums, on top of a trained M2.

``train_m3`` prepares the heads photos exactly as M2 does (same checks, same
M1 predictions file, the same seeded fit/stop split of the photos), and builds
each user's albums of 24 in posting-time order. Every epoch uses every album
that holds a fit photo (``album_sampling: all``), or, as in the study, one
random album per user weighted by the user's album count (``one-per-user``);
the loss is taken over the albums' fit photos. Early stopping scores the stop
photos in their albums, by default on their loss (``monitor: loss``). The
network starts from the M2's weights and predicts exactly what the M2 does
until training moves its album weights and head.

``shuffle_albums`` is the ablation: the user ids are permuted across the
photos (seeded) before albums are cut, so an album holds random photos of the
split; the model is then scored on real albums.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trigeo.errors import InputError
from trigeo.provenance import write_json_atomic

__all__ = ["album_collate", "default_m3_name", "shuffled_users", "train_m3"]

log = logging.getLogger("trigeo.train")


def album_collate(
    x: np.ndarray,
    y: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    album_size: int,
    weight: np.ndarray | None = None,
) -> Callable[[list[np.ndarray]], dict[str, torch.Tensor]]:
    """Batches of albums (row positions) -> padded ``x``, ``y``, ``lat``, ``lon`` and ``mask``.

    ``weight`` (per row) adds ``w``: each photo's weight in the training loss.
    """
    from trigeo.models.m3 import pad_albums

    def collate(albums: list[np.ndarray]) -> dict[str, torch.Tensor]:
        xs, mask = pad_albums(x, albums, album_size)
        ys = np.full(mask.shape, -1, dtype=np.int64)
        lats, lons, ws = np.zeros(mask.shape), np.zeros(mask.shape), np.zeros(mask.shape)
        for i, rows in enumerate(albums):
            n = len(rows)
            ys[i, :n], lats[i, :n], lons[i, :n] = y[rows], lat[rows], lon[rows]
            ws[i, :n] = 1.0 if weight is None else weight[rows]
        batch = {
            "x": torch.from_numpy(xs),
            "mask": torch.from_numpy(mask),
            "y": torch.from_numpy(ys),
            "lat": torch.from_numpy(lats),
            "lon": torch.from_numpy(lons),
        }
        if weight is not None:
            batch["w"] = torch.from_numpy(ws.astype(np.float32))
        return batch

    return collate


class _Albums(torch.utils.data.Dataset):
    def __init__(self, albums: list[np.ndarray]) -> None:
        self.albums = albums

    def __len__(self) -> int:
        return len(self.albums)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.albums[i]


def _one_album_per_user(by_user: list[list[np.ndarray]]) -> Callable[[Any], _Albums]:
    def draw(rng: np.random.Generator) -> _Albums:
        return _Albums([albums[rng.integers(len(albums))] for albums in by_user])

    return draw


def _all_albums(albums: list[np.ndarray]) -> Callable[[Any], _Albums]:
    dataset = _Albums(albums)

    def draw(rng: np.random.Generator) -> _Albums:
        return dataset  # the data module permutes the order with rng

    return draw


@torch.no_grad()
def _m2_logits(net: Any, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The eval-mode M2 layers' logits for every input row, ``(n, N)`` float32."""
    training = net.m2.training
    net.m2.eval()
    with torch.no_grad():
        out = [
            net.m2(torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))).numpy()
            for start in range(0, len(x), batch_size)
        ]
    net.m2.train(training)
    return np.concatenate(out).astype(np.float32)


def shuffled_users(user_id: Any, seed: int) -> np.ndarray:
    """The ablation: the same user ids, permuted across photos (seeded).

    Albums cut from the permuted ids hold random photos of the split, in the
    album sizes the real users give (each pseudo-user keeps a real user's
    photo count).
    """
    rng = np.random.default_rng([seed, 31])
    values = np.asarray(user_id)
    return values[rng.permutation(len(values))]


def default_m3_name(m1_name: str | None, config: Any) -> str:
    """``M3 coarse``; the ablations end in ``shuffled-time`` and/or ``shuffled-albums``."""
    from trigeo.train.m2 import default_head_name

    name = default_head_name(m1_name, "m3", config.shuffle_time)
    return name + (" shuffled-albums" if config.shuffle_albums else "")


def _resolve_m1(
    m2_model: Any, m1: str | Path | None, m1_pred: str | Path | None, config: Any, out: Path
) -> tuple[Path, Path]:
    """The M1 directory (refused unless it is the M2's) and its heads predictions file."""
    from trigeo.models.m2 import read_model_json

    m1_dir = Path(m1) if m1 else Path(m2_model.m1["dir"])
    m1_id = read_model_json(m1_dir).get("model_id")
    if m1_id != m2_model.m1["model_id"]:
        raise InputError(
            f"the M2 {m2_model.model_id} was built on M1 {m2_model.m1['model_id']}, not on the "
            f"given M1 {m1_id}; pass the M1 it was built on",
            source=m1_dir,
        )
    if m1_pred is None:
        recorded = Path(str(m2_model.provenance.get("m1_predictions", "")))
        same_split = m2_model.config.get("train_split") == config.train_split
        m1_pred = recorded if same_split and recorded.is_file() else None
    m1_pred = Path(m1_pred) if m1_pred else out / f"m1-{config.train_split}.parquet"
    return m1_dir, m1_pred


@dataclass
class _AlbumSplit:
    """The heads photos cut into albums, with M2's photo-level fit/stop split."""

    fit_labels: np.ndarray
    stop_labels: np.ndarray
    by_user: dict[str, list[np.ndarray]]
    fit_albums: list[np.ndarray]
    stop_albums: list[np.ndarray]
    counts: dict[str, Any]


def _split_albums(
    heads: Any, n_rows: int, config: Any, report: Callable[[str], None]
) -> _AlbumSplit:
    """Albums of the heads photos and their fit and stop parts (refused when one is empty)."""
    from trigeo.models.m3 import make_albums
    from trigeo.train.heads_data import split_rows

    # The same photo-level fit/stop split as M2's (same rows, fraction and seed), so M3 learns
    # from exactly M2's photos. Albums hold all of a user's heads photos: a stop photo is
    # context (its M1 cells and time) in training and scored only in validation.
    stop = split_rows(n_rows, config.stop_fraction, config.seed)
    fit_labels = np.where(stop, -1, heads.labels)
    stop_labels = np.where(stop, heads.labels, -1)
    # Albums are cut by the true posting order (the time features may be shuffled).
    users = heads.user_id
    if config.shuffle_albums:
        users = shuffled_users(users, config.seed)
        report("--shuffle-albums: user ids permuted across the photos; albums are random photos")
    albums = make_albums(users, heads.posted_at, heads.photo_id, config.album_size)
    by_user: dict[str, list[np.ndarray]] = {}
    for album in albums:
        by_user.setdefault(users[album[0]], []).append(album)
    fit_albums = [album for album in albums if (fit_labels[album] >= 0).any()]
    stop_albums = [album for album in albums if (stop_labels[album] >= 0).any()]
    n_single = sum(1 for a in by_user.values() if sum(len(r) for r in a) == 1)
    counts = {
        **heads.counts,
        "users": len(by_user),
        "albums": len(albums),
        "single_photo_users": n_single,
        "fit": int((fit_labels >= 0).sum()),
        "stop": int((stop_labels >= 0).sum()),
        "fit_albums": len(fit_albums),
        "stop_albums": len(stop_albums),
    }
    report(
        f"albums of {config.album_size}: {len(albums)} from {len(by_user)} users "
        f"({n_single} with a single photo: an album of one); {counts['fit']} photos fit, "
        f"{counts['stop']} for early stopping (in {len(stop_albums)} albums)"
    )
    if not counts["fit"] or not stop_albums:
        raise InputError(f"too few photos to split into fit and stop parts: {counts}")
    return _AlbumSplit(fit_labels, stop_labels, by_user, fit_albums, stop_albums, counts)


def _m3_net(n_cells: int, m2_model: Any, config: Any, x: np.ndarray) -> tuple[Any, np.ndarray]:
    """The M3 network on the M2's weights, and the rows it reads (``x``, or frozen M2 logits)."""
    from trigeo.models.m3 import M3Net

    net = M3Net(
        n_cells,
        m2={k: v for k, v in m2_model.net.hparams().items() if k != "num_classes"},
        hidden=config.hidden,
        layers=config.layers,
        lstm_dropout=config.lstm_dropout,
        lstm_input=config.lstm_input,
        album_means=config.album_means,
        head_bias=config.head_bias,
        head_centering=config.head_centering,
        m2_scale=config.m2_scale,
    )
    net.m2.load_state_dict(m2_model.net.state_dict())
    inputs = x
    if not config.train_m2_layers:
        net.freeze_m2()
        if config.lstm_input == "logprobs":
            # Frozen layers give every photo the same M2 output in every epoch: compute it
            # once (the network then reads it instead of M2's input; the same values as
            # running the frozen layers in eval mode, up to float rounding).
            inputs = _m2_logits(net, x)
            net.m2_logits_given = True
    return net, inputs


def _album_weights(
    by_user: dict[str, list[np.ndarray]], n_rows: int, config: Any
) -> np.ndarray | None:
    """Each photo's loss weight: its user's album count with one album per user, else none."""
    # One album per user and epoch under-weights the photos of users with many albums: the
    # network would learn the user-level class prior as a bias. Weighting an album's loss by
    # its user's album count makes every photo count the same in expectation (as in M2).
    # With every album in every epoch, every photo counts once already.
    weight = None
    if config.album_sampling == "one-per-user" and config.album_weighting:
        weight = np.ones(n_rows)
        for albums_of_user in by_user.values():
            weight[np.concatenate(albums_of_user)] = len(albums_of_user)
    return weight


def _m3_metrics(
    stage_metrics: list[dict[str, Any]],
    counts: dict[str, Any],
    config: Any,
    net: Any,
    report: Callable[[str], None],
) -> dict[str, Any]:
    """The run's ``metrics.json``: the heads' metrics plus the album settings and weights."""
    from trigeo.train.heads_module import head_run_metrics

    metrics = head_run_metrics(stage_metrics, counts, config)
    metrics["shuffle_albums"] = bool(config.shuffle_albums)
    metrics["album_sampling"] = config.album_sampling
    metrics["album_mean_weights"] = net.album_mean_weights()
    learned = dict(metrics["album_mean_weights"])
    if net.m2_scale:
        metrics["m2_logit_scale"] = learned["M2 scale"] = float(net.m2_logit_scale.detach())
    if learned:
        report("learned weights: " + ", ".join(f"{k} {v:.3f}" for k, v in learned.items()))
    return metrics


def train_m3(
    data: str | Path,
    m2: str | Path,
    out: str | Path,
    config: Any,
    *,
    m1: str | Path | None = None,
    m1_pred: str | Path | None = None,
    resume: bool = False,
    allow_overlap: bool = False,
    name: str | None = None,
    callbacks: Sequence[Any] = (),
    report: Callable[[str], None] = log.info,
) -> Any:
    """Train M3 on the heads photos' albums and save the model directory.

    Parameters
    ----------
    m2
        The M2 model directory (its layers start M3; its M1 feeds both).
    m1
        The M1 directory (default: the one recorded in the M2); refused if it
        is not the M1 the M2 was built on.
    m1_pred
        M1's predictions for the heads photos (default: the M2's, else
        ``out/m1-<split>.parquet``, made when missing).
    config
        A :class:`~trigeo.train.heads_config.M3Config`.

    Returns
    -------
    M3Model
    """
    import lightning

    from trigeo.models.m2 import M2Model
    from trigeo.models.m3 import M3Model
    from trigeo.runtime.devices import set_cpu_threads
    from trigeo.train.heads_config import head_config_to_dict
    from trigeo.train.heads_data import prepare_heads
    from trigeo.train.heads_module import fit_head_stages
    from trigeo.train.m2 import start_head_run

    out = Path(out)
    set_cpu_threads(config.cpu_threads, config.num_workers)
    m2_model = M2Model.load(m2)
    m1_dir, m1_pred = _resolve_m1(m2_model, m1, m1_pred, config, out)
    heads = prepare_heads(
        data, m1_dir, config, m1_pred=m1_pred, allow_overlap=allow_overlap, report=report
    )
    x, n_cells = start_head_run(
        heads,
        config,
        out,
        resume,
        report,
        m2_model_id=m2_model.model_id,
        shuffle_albums=config.shuffle_albums,
    )
    split = _split_albums(heads, len(x), config, report)
    # Seeded here, not earlier: running M1 for a missing predictions file draws from the RNG.
    lightning.seed_everything(config.seed, workers=True, verbose=False)
    net, inputs = _m3_net(n_cells, m2_model, config, x)
    weight = _album_weights(split.by_user, len(x), config)
    label_lat, label_lon = m2_model.label_points()
    stage_metrics, is_zero = fit_head_stages(
        net,
        config,
        out,
        make_train=_one_album_per_user(list(split.by_user.values()))
        if config.album_sampling == "one-per-user"
        else _all_albums(split.fit_albums),
        val_set=_Albums(split.stop_albums),
        collate=album_collate(
            inputs, split.fit_labels, heads.lat, heads.lon, config.album_size, weight=weight
        ),
        val_collate=album_collate(
            inputs, split.stop_labels, heads.lat, heads.lon, config.album_size
        ),
        label_lat=label_lat,
        label_lon=label_lon,
        resume=resume,
        callbacks=callbacks,
        report=report,
    )
    net.m2_logits_given = False
    net.freeze_m2(False)
    metrics = _m3_metrics(stage_metrics, split.counts, config, net, report)
    model = M3Model(
        net.cpu().eval(),
        heads.mesh,
        album_size=config.album_size,
        m2={"model_id": m2_model.model_id, "name": m2_model.name, "dir": str(Path(m2).resolve())},
        label_kind=m2_model.label_kind,
        m1=heads.m1_record,
        top_k=config.top_k,
        config=head_config_to_dict(config),
        metrics=metrics,
        name=name or default_m3_name(heads.m1_meta.get("name"), config),
        provenance=heads.provenance(config, allow_overlap),
    )
    if is_zero:
        model.save(
            out, heads.mesh_path, inputs={"dataset": heads.dataset.hash, "m2": m2_model.model_id}
        )
        write_json_atomic(out / "metrics.json", metrics)
        report(f"saved {model.name} ({model.model_id}) to {out}")
    return model
