"""``trigeo index build``: descriptors of a dataset split into a faiss index directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from trigeo.errors import InputError
from trigeo.provenance import make_provenance
from trigeo.retrieve.index import RetrievalIndex
from trigeo.runtime.options import InferenceOptions

__all__ = ["build_index"]

log = logging.getLogger("trigeo.retrieve")


def build_index(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str | None = "train",
    kind: str = "flat",
    nlist: int | None = None,
    pq_m: int | None = None,
    pq_bits: int = 8,
    options: InferenceOptions | None = None,
    report: Callable[[str], None] = log.info,
) -> RetrievalIndex | None:
    """Index the photos of ``split`` (``None``: all) of a dataset by M1 descriptor.

    Parameters
    ----------
    model_dir
        The M1 model directory whose descriptors are indexed; its model id is
        recorded and queries from any other model are refused.
    data
        The dataset directory; its table hash and folder are recorded (the
        folder is where ``retrieve query --out`` contact sheets and the server's thumbnails
        read the indexed photos from).
    out
        The index directory to write.
    kind, nlist, pq_m, pq_bits
        See :func:`trigeo.retrieve.index.make_faiss_index`.
    options
        How the photos are embedded (default: :class:`InferenceOptions`);
        ``max_unreadable`` is recorded in the index's provenance.

    Returns
    -------
    RetrievalIndex or None
        ``None`` on non-zero DDP ranks.
    """
    from trigeo.data.table import Dataset
    from trigeo.models.m1 import M1Model
    from trigeo.retrieve.embed import embed_photos
    from trigeo.runtime.devices import launch_rank

    options = options or InferenceOptions()
    model = M1Model.load(model_dir)
    dataset = Dataset.open(data)
    rows = dataset.photos(split)
    if len(rows) == 0:
        raise InputError(f"split {split!r} of {dataset.root} has no photos")
    report(f"embedding {len(rows)} photos of {dataset.root} with {model.model_id}")
    out = Path(out)
    embedded = embed_photos(
        model,
        dataset.root,
        rows["image"].astype(str).tolist(),
        options=options,
        log_file=out.with_name(out.name + ".log"),
        work_dir=out.resolve().parent,
        report=report,
    )
    if launch_rank() != 0:
        return None
    kept = rows.iloc[embedded.rows][["photo_id", "lat", "lon", "image"]].copy()
    kept["photo_id"] = kept["photo_id"].astype(str)
    config = {
        "split": split,
        "kind": kind,
        "nlist": nlist,
        "pq_m": pq_m,
        "pq_bits": pq_bits,
        "max_unreadable": options.max_unreadable,
    }
    index = RetrievalIndex.from_features(
        embedded.features,
        kept,
        model_id=model.model_id,
        kind=kind,
        nlist=nlist,
        pq_m=pq_m,
        pq_bits=pq_bits,
        mesh_hash=model.mesh_hash,
        dataset_sha256=dataset.hash,
        dataset_root=str(dataset.root.resolve()),
        model_dir=str(Path(model_dir).resolve()),
        split=split,
        skipped=len(embedded.skipped),
        provenance=make_provenance(
            config,
            {"model": model.model_id, "dataset": dataset.hash},
            skipped=len(embedded.skipped),
        ),
    )
    index.save(out)
    report(
        f"indexed {len(index)} photos ({index.kind}, {index.dim} values each) in {out}"
        + (f"; {len(embedded.skipped)} unreadable skipped" if embedded.skipped else "")
    )
    return index
