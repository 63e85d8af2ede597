"""Every check an M1 run can fail on bad input, done before any training starts.

:func:`prepare_m1` opens the dataset and the mesh, checks that the mesh was
not built from this dataset's evaluation photos, that the image column points
at readable local images, that the training photos fall in the mesh's kept
cells, resolves the backbone (pretrained, local weights or random) and the
labels, and returns a :class:`PreparedRun`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigeo.data.table import Dataset
from trigeo.errors import InputError, TrigeoWarning, UnreadableImagesError

__all__ = [
    "STUDY_SIZED_PARAMETERS",
    "PreparedRun",
    "build_net",
    "check_images_readable",
    "check_mesh_source",
    "head_names_for",
    "prepare_m1",
]

log = logging.getLogger("trigeo.train")

#: A backbone this large trained from random weights is a study-sized run that the
#: study itself started from ImageNet weights; trigeo warns (Inception v4: 41M).
STUDY_SIZED_PARAMETERS = 10_000_000


@dataclass
class PreparedRun:
    """Everything validated and resolved before training starts.

    ``mesh``, ``mesh_path``, ``train_labels``, ``val_labels`` and
    ``label_lat``/``label_lon`` are the primary (finest) mesh's; a multi-head
    run also has every head's in ``meshes``, ``mesh_paths``, ``head_names``,
    ``head_labels`` (train photos x heads, -1 in a head's dropped cells),
    ``val_head_labels`` and ``head_label_points``.
    """

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
    init: str = "random"
    notes: list[str] = field(default_factory=list)
    meshes: list[Any] = field(default_factory=list)
    mesh_paths: list[Path] = field(default_factory=list)
    head_names: list[str] = field(default_factory=list)
    head_labels: np.ndarray | None = None
    val_head_labels: np.ndarray | None = None
    head_label_points: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def n_heads(self) -> int:
        return max(1, len(self.meshes))


def head_names_for(mesh_paths: Sequence[Path]) -> list[str]:
    """One head name per mesh file: its stem (``coarse.npz`` -> ``coarse``).

    Raises
    ------
    InputError
        Two mesh files share a stem, or the same file is given twice.
    """
    names = [Path(p).stem for p in mesh_paths]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"several --mesh files are called {', '.join(repeated)}; each head is named after "
            "its mesh file's stem, so give the meshes distinct file names"
        )
    return names


def _load_mesh(path: Path) -> Any:
    from trigeo.mesh import load_mesh

    if not path.exists():
        raise InputError("mesh file not found", source=path)
    return load_mesh(path)


def check_mesh_source(
    mesh: Any, mesh_path: Path, dataset: Dataset, train_split: str, *, allow_eval: bool = False
) -> str:
    """Refuse a mesh whose points included evaluation photos of ``dataset``.

    Imagery centroids are mean positions of the photos in each cell, so a
    mesh built from ``val`` photos leaks their coordinates into the labels.

    Returns
    -------
    str
        A one-line note on where the mesh's points came from.

    Raises
    ------
    InputError
        The mesh was built from rows of this very dataset that include splits
        other than ``train_split``, and ``allow_eval`` is false.
    """
    source = getattr(mesh, "points_source_", None)
    if not source:
        return "mesh records no points source (built by an older trigeo); split leak unchecked"
    if source.get("dataset_sha256") != dataset.hash:
        where = source.get("path") or "another file"
        return f"mesh built from {where}, not this dataset"
    used = source.get("splits_used")
    if used is None:
        return "mesh built from this dataset's table without a split column"
    others = sorted(set(used) - {train_split})
    if not others:
        return f"mesh built from this dataset's {train_split!r} photos only"
    if allow_eval:
        return (
            f"mesh built with this dataset's {', '.join(map(repr, others))} photos "
            "(allowed by --allow-eval-in-mesh)"
        )
    raise InputError(
        f"the mesh was built from this dataset's {', '.join(map(repr, others))} photos as well "
        f"as {train_split!r}, so its imagery centroids include evaluation photos; rebuild it "
        f"with `trigeo mesh build --data {dataset.root} --split {train_split} ...`, or pass "
        "--allow-eval-in-mesh to train anyway",
        source=mesh_path,
    )


def check_images_readable(
    dataset: Dataset,
    images: np.ndarray,
    *,
    samples: int,
    max_unreadable: float,
    seed: int = 0,
) -> int:
    """Read and decode a bounded random sample of ``images`` before training.

    Parameters
    ----------
    dataset
        The dataset the image references are relative to.
    images
        ``image`` column values of the photos a run will read.
    samples
        At most this many are tried (0 skips the check).
    max_unreadable
        Largest tolerated share of unreadable images in the sample.

    Returns
    -------
    int
        How many sampled images failed.

    Raises
    ------
    InputError
        The column holds URLs (nothing was downloaded) or no image values.
    UnreadableImagesError
        More than ``max_unreadable`` of the sample cannot be read.
    """
    from trigeo.data.loading import ImageReader

    images = np.asarray(images).astype(str)
    if samples <= 0 or len(images) == 0:
        return 0
    urls = np.char.find(images, "://") >= 0
    if urls.any():
        raise InputError(
            f"{int(urls.sum())} of {len(images)} images are URLs (e.g. {images[urls][0]!r}), "
            f"not local files; run `trigeo data download {dataset.root}` first to fetch them",
            source=dataset.root,
            column="image",
        )
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), min(samples, len(images)), replace=False)
    reader = ImageReader(dataset.root, images[pick])
    failed: list[str] = []
    for ref in images[pick]:
        try:
            reader.open(ref)
        except Exception as exc:  # any read/decode failure counts; the message is reported
            failed.append(f"{ref}: {type(exc).__name__}: {exc}")
    if len(failed) > max_unreadable * len(pick):
        shown = "; ".join(failed[:3])
        raise UnreadableImagesError(
            f"{dataset.root}: {len(failed)} of {len(pick)} sampled images cannot be read "
            f"(limit max_unreadable_fraction={max_unreadable:g}), e.g. {shown}"
        )
    return len(failed)


def build_net(
    config: Any, n_cells: int | Sequence[int], head_names: Sequence[str] | None = None
) -> tuple[Any, dict[str, Any] | None, str]:
    """The M1 network (one head per entry of ``n_cells``), initialised as the config says.

    ``weights`` (a local file) wins; else ``pretrained`` asks timm for its
    hub weights; else the backbone starts from random weights, with a
    warning when it is study-sized.

    Returns
    -------
    net, weights_report, init
        ``init`` is ``"weights:<path>"``, ``"pretrained"`` or ``"random"``.

    Raises
    ------
    InputError
        Pretrained weights cannot be downloaded here (names ``--weights PATH``).
    """
    from functools import partial

    from trigeo.models.m1 import load_backbone_weights
    from trigeo.models.m1_net import M1Net as _Net

    M1Net = partial(_Net, head_names=head_names)
    if config.weights:
        net = M1Net(config.backbone, n_cells, drop_rate=config.drop_rate)
        return net, load_backbone_weights(net.backbone, config.weights), f"weights:{config.weights}"
    if config.pretrained:
        try:
            net = M1Net(config.backbone, n_cells, pretrained=True, drop_rate=config.drop_rate)
        except InputError:
            raise
        except Exception as exc:  # hub, network and cache errors come in many types
            raise InputError(
                f"cannot fetch timm's pretrained weights for {config.backbone!r} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "this machine cannot download them: download them where you can and pass "
                "--weights PATH (a timm .pth/.bin or .safetensors file), or set "
                "pretrained: false to start from random weights",
                column="pretrained",
            ) from exc
        return net, None, "pretrained"
    net = M1Net(config.backbone, n_cells, drop_rate=config.drop_rate)
    n_params = sum(p.numel() for p in net.backbone.parameters())
    if n_params >= STUDY_SIZED_PARAMETERS:
        warnings.warn(
            f"{config.backbone} ({n_params / 1e6:.0f}M parameters) starts from random weights; "
            "the study fine-tuned ImageNet weights. Pass --weights PATH or set pretrained: true "
            "unless training from scratch is intended",
            TrigeoWarning,
            stacklevel=2,
        )
    return net, None, "random"


def _val_rows(dataset: Dataset, mesh: Any, config: Any, notes: list[str]) -> tuple[Any, ...]:
    if not config.val_split:
        return None, None, None, None
    if config.val_split not in set(dataset.table["split"]):
        notes.append(f"no {config.val_split!r} photos: training without validation")
        return None, None, None, None
    val = dataset.photos(config.val_split)
    if config.val_max_photos and len(val) > config.val_max_photos:
        rng = np.random.default_rng(config.seed)
        val = val.iloc[np.sort(rng.choice(len(val), config.val_max_photos, replace=False))]
    val_lat, val_lon = val["lat"].to_numpy(), val["lon"].to_numpy()
    val_labels = np.asarray(mesh.locate(val_lat, val_lon), dtype=np.int64)
    notes.append(f"validation on {len(val)} {config.val_split!r} photos")
    return val["image"].to_numpy(), val_labels, val_lat, val_lon


def _primary_mesh(
    mesh_path: str | Path | Sequence[str | Path], config: Any
) -> tuple[list[Path], list[str], list[Any], int]:
    """The mesh files, their head names, the meshes and the primary (most cells) one's index.

    Raises
    ------
    InputError
        No mesh; two meshes with the same stem; the primary mesh's hash is not
        ``config.mesh_hash``.
    """
    paths = (
        [Path(mesh_path)] if isinstance(mesh_path, (str, Path)) else [Path(p) for p in mesh_path]
    )
    if not paths:
        raise InputError("give at least one --mesh")
    names = head_names_for(paths)
    meshes = [_load_mesh(p) for p in paths]
    primary = int(np.argmax([int(m.n_cells_) for m in meshes]))
    mesh = meshes[primary]
    if config.mesh_hash and str(config.mesh_hash) != str(mesh.mesh_hash):
        raise InputError(
            f"mesh hash {mesh.mesh_hash} differs from mesh_hash {config.mesh_hash} recorded in "
            "the config; pass the mesh the config was made for",
            source=paths[primary],
        )
    return paths, names, meshes, primary


def _train_cells(train: Any, meshes: list[Any], paths: list[Path], config: Any) -> np.ndarray:
    """Each training photo's cell in every mesh, ``(photos, meshes)``, -1 in dropped cells.

    Raises
    ------
    InputError
        A mesh's kept cells miss more than ``max_dropped_fraction`` of the photos.
    """
    lat, lon = train["lat"].to_numpy(), train["lon"].to_numpy()
    all_cells = np.stack([np.asarray(m.locate(lat, lon)) for m in meshes], axis=1)
    for i, path in enumerate(paths):
        n_out = int((all_cells[:, i] < 0).sum())
        if n_out == len(all_cells) or n_out / len(all_cells) > config.max_dropped_fraction:
            raise InputError(
                f"{n_out} of {len(all_cells)} {config.train_split!r} photos "
                f"({100 * n_out / len(all_cells):.1f}%) fall outside the mesh's kept cells "
                f"(limit max_dropped_fraction={config.max_dropped_fraction}); was the mesh built "
                "from this dataset's training coordinates?",
                source=path,
            )
    return all_cells


def _cell_notes(
    all_cells: np.ndarray, meshes: list[Any], names: list[str], primary: int, config: Any
) -> list[str]:
    """Notes on the photos used and excluded, and on each other head's unlabelled photos."""
    cells = all_cells[:, primary]
    keep = cells >= 0
    notes = [
        f"{config.train_split}: {len(cells)} photos, {int((~keep).sum())} in dropped cells "
        f"excluded, {int(keep.sum())} used over {meshes[primary].n_cells_} cells"
        + (f" of the primary mesh {names[primary]!r}" if len(meshes) > 1 else "")
    ]
    if len(meshes) > 1:
        for i, name in enumerate(names):
            if i != primary:
                unlabeled = int((all_cells[keep, i] < 0).sum())
                notes.append(
                    f"head {name}: {meshes[i].n_cells_} cells; {unlabeled} used photos in its "
                    "dropped cells carry no loss for it"
                )
    return notes


def _init_note(config: Any, weights_report: dict[str, Any] | None, init: str) -> str:
    """How the backbone was initialised (what a weights file loaded, and left out)."""
    if weights_report is not None:
        return (
            f"weights {config.weights}: {weights_report['loaded']} tensors loaded, "
            f"{len(weights_report['missing'])} missing {weights_report['missing'][:5]}, "
            f"{len(weights_report['unexpected'])} unexpected {weights_report['unexpected'][:5]}, "
            f"{len(weights_report['dropped'])} classifier tensors dropped"
        )
    return f"{config.backbone}: {init} initialisation"


def prepare_m1(
    data: str | Path,
    mesh_path: str | Path | Sequence[str | Path],
    config: Any,
    *,
    allow_eval_in_mesh: bool = False,
) -> PreparedRun:
    """Validate the inputs of an M1 run and resolve labels, splits and the network.

    Several mesh files give a multi-head run: one head per mesh on one
    backbone. The mesh with the most cells is the primary one: its kept cells
    decide which training photos are used and its classes drive the
    class-balanced stages; another head's label is -1 (no loss) for a photo
    in one of its dropped cells.

    Raises
    ------
    InputError
        Empty split; mesh built from evaluation photos of this dataset; mesh
        whose kept cells miss most training photos, or whose hash differs from
        ``config.mesh_hash``; two meshes with the same file stem; image column
        of URLs; unknown backbone (with close names); weights that do not fit
        the backbone; pretrained weights that cannot be downloaded.
    UnreadableImagesError
        Too many sampled training images cannot be read.
    """
    from trigeo.models.m1 import check_backbone, resolve_image_config

    config.validate()
    check_backbone(config.backbone)
    dataset = Dataset.open(data)
    train = dataset.photos(config.train_split)
    paths, names, meshes, primary = _primary_mesh(mesh_path, config)
    mesh, mesh_path = meshes[primary], paths[primary]
    notes = [
        check_mesh_source(one, path, dataset, config.train_split, allow_eval=allow_eval_in_mesh)
        for one, path in zip(meshes, paths, strict=True)
    ]
    all_cells = _train_cells(train, meshes, paths, config)
    cells = all_cells[:, primary]
    keep = cells >= 0
    notes += _cell_notes(all_cells, meshes, names, primary, config)
    train_images = train["image"].to_numpy()[keep]
    bad = check_images_readable(
        dataset,
        train_images,
        samples=config.image_check_samples,
        max_unreadable=config.max_unreadable_fraction,
        seed=config.seed,
    )
    if bad:
        notes.append(
            f"{bad} of {min(len(train_images), config.image_check_samples)} sampled "
            "training images unreadable (within the limit; they will be skipped)"
        )
    sizes = [int(m.n_cells_) for m in meshes]
    net, weights_report, init = build_net(
        config, sizes[0] if len(sizes) == 1 else sizes, names if len(sizes) > 1 else None
    )
    notes.append(_init_note(config, weights_report, init))
    data_config = resolve_image_config(net.backbone, config.image_size)
    points = [
        tuple(np.asarray(a, dtype=np.float64) for a in m.centroids(kind=config.label))
        for m in meshes
    ]
    val_images, val_labels, val_lat, val_lon = _val_rows(dataset, mesh, config, notes)
    val_head_labels = None
    if len(meshes) > 1 and val_lat is not None:
        val_head_labels = np.stack(
            [np.asarray(m.locate(val_lat, val_lon), dtype=np.int64) for m in meshes], axis=1
        )
    return PreparedRun(
        dataset=dataset,
        mesh=mesh,
        mesh_path=mesh_path,
        net=net,
        data_config=data_config,
        train_images=train_images,
        train_labels=cells[keep].astype(np.int64),
        train_photo_ids=train["photo_id"].to_numpy()[keep],
        n_train_total=len(cells),
        n_dropped=int((~keep).sum()),
        val_images=val_images,
        val_labels=val_labels,
        val_lat=val_lat,
        val_lon=val_lon,
        label_lat=points[primary][0],
        label_lon=points[primary][1],
        weights_report=weights_report,
        init=init,
        notes=notes,
        meshes=meshes,
        mesh_paths=paths,
        head_names=names,
        head_labels=all_cells[keep].astype(np.int64) if len(meshes) > 1 else None,
        val_head_labels=val_head_labels,
        head_label_points=points,
    )
