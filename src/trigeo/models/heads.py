"""What the M2 and M3 model directories share: weights, a mesh copy, the M1 they build on.

:class:`HeadModel` is the base of :class:`~trigeo.models.m2.M2Model` and
:class:`~trigeo.models.m3.M3Model`; the helpers read ``model.json`` and the
checked mesh copy of any trigeo model directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trigeo.errors import ArtifactError
from trigeo.provenance import atomic_path, hash_file, make_provenance, write_json_atomic

__all__ = ["TOP_K", "HeadModel", "copy_mesh", "load_mesh_copy", "read_model_json"]

MODEL_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
#: M1 cells kept per photo (the study's top 10).
TOP_K = 10


def _save_weights(net: nn.Module, path: Path, fmt: str) -> str:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": fmt})
    return hash_file(path)


def _load_weights(net: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        net.load_state_dict(load_file(str(path)))
    except Exception as exc:
        raise ArtifactError(f"{path}: cannot load weights ({exc})") from exc


def read_model_json(root: str | Path, fmt: str | None = None) -> dict[str, Any]:
    """``model.json`` of a model directory, optionally checking its format."""
    path = Path(root) / MODEL_FILE
    if not path.exists():
        raise ArtifactError(f"{root}: no {MODEL_FILE}; is this a trigeo model directory?")
    try:
        meta = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: corrupt JSON ({exc})") from exc
    if fmt is not None and meta.get("format") != fmt:
        raise ArtifactError(f"{path}: format {meta.get('format')!r}, expected {fmt}")
    return meta


def load_mesh_copy(root: Path, meta: dict[str, Any]) -> Any:
    """The mesh copy of a model directory, checked against the recorded hash."""
    from trigeo.mesh import load_mesh

    mesh_path = root / meta["mesh_file"]
    if not mesh_path.exists():
        raise ArtifactError(f"{root}: mesh copy {meta['mesh_file']} is missing")
    mesh = load_mesh(mesh_path)  # either mesh kind
    if str(mesh.mesh_hash) != meta["mesh_hash"]:
        raise ArtifactError(
            f"{mesh_path}: mesh hash {mesh.mesh_hash} differs from the recorded "
            f"{meta['mesh_hash']}; the model directory was modified"
        )
    return mesh


def copy_mesh(root: Path, mesh_path: Path, stem: str = "mesh") -> str:
    """Copy the mesh file into ``root`` as ``<stem><suffixes>`` (atomically); returns its name."""
    mesh_file = stem + "".join(mesh_path.suffixes)
    if mesh_path.resolve() != (root / mesh_file).resolve():
        with atomic_path(root / mesh_file) as tmp:
            shutil.copyfile(mesh_path, tmp)
    return mesh_file


class HeadModel:
    """What M2 and M3 model directories share: the mesh, the M1 they build on, metadata.

    Attributes
    ----------
    net : torch.nn.Module
    mesh : DelaunayMesh or QuadtreeMesh
    label_kind : {"imagery", "cell"}
        Inherited from the M1 (which label point a prediction reports).
    m1 : dict
        ``model_id``, ``weights_sha256``, ``mesh_hash``, ``name`` and ``dir``
        (the directory it was loaded from) of the M1 whose predictions feed the head.
    top_k : int
        M1 cells kept per photo (10).
    config, metrics, provenance : dict
    name, model_id : str
    root : Path or None
    """

    FORMAT = ""
    PREFIX = ""

    def __init__(
        self,
        net: nn.Module,
        mesh: Any,
        *,
        label_kind: str,
        m1: dict[str, Any],
        top_k: int = TOP_K,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        model_id: str | None = None,
        name: str | None = None,
        root: Path | None = None,
    ) -> None:
        if mesh.n_cells_ != net.num_classes:
            raise ArtifactError(
                f"mesh has {mesh.n_cells_} cells but the network has {net.num_classes} outputs"
            )
        self.net, self.mesh = net, mesh
        self.label_kind = label_kind
        self.m1 = dict(m1)
        self.top_k = int(top_k)
        self.config = dict(config or {})
        self.metrics = dict(metrics or {})
        self.provenance = dict(provenance or {})
        self.model_id = model_id or f"{self.PREFIX}-{label_kind}"
        self.name = name or self.PREFIX.upper()
        self.root = root

    @property
    def mesh_hash(self) -> str:
        return str(self.mesh.mesh_hash)

    @property
    def num_classes(self) -> int:
        return int(self.net.num_classes)

    def label_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of each cell's label point for this model's label kind."""
        lat, lon = self.mesh.centroids(kind=self.label_kind)
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)

    def _extra(self) -> dict[str, Any]:
        return {}

    def save(
        self, root: str | Path, mesh_path: str | Path, *, inputs: dict[str, str] | None = None
    ) -> Path:
        """Write weights, a mesh copy and ``model.json`` to ``root`` (other files are kept)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        mesh_file = copy_mesh(root, Path(mesh_path))
        weights_hash = _save_weights(self.net, root / WEIGHTS_FILE, self.FORMAT)
        self.model_id = f"{self.PREFIX}-{self.label_kind}-{weights_hash[:10]}"
        record_inputs = {"mesh": hash_file(root / mesh_file), "m1": self.m1["model_id"]}
        self.provenance = make_provenance(
            self.config,
            {**record_inputs, **(inputs or {})},
            **{
                k: v
                for k, v in self.provenance.items()
                if k not in ("config", "inputs", "trigeo_version", "created_at")
            },
        )
        record = {
            "format": self.FORMAT,
            "model_id": self.model_id,
            "name": self.name,
            "net": self.net.hparams(),
            "label_kind": self.label_kind,
            "top_k": self.top_k,
            "m1": self.m1,
            "mesh_file": mesh_file,
            "mesh_hash": self.mesh_hash,
            "weights_sha256": weights_hash,
            **self._extra(),
            "config": self.config,
            "metrics": self.metrics,
            "provenance": self.provenance,
        }
        write_json_atomic(root / MODEL_FILE, record)
        self.root = root
        return root

    @classmethod
    def _build_net(cls, meta: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def _from_meta(cls, meta: dict[str, Any]) -> dict[str, Any]:
        return {}

    @classmethod
    def load(cls, root: str | Path, map_location: str | torch.device = "cpu") -> Any:
        """Load a model directory written by :meth:`save`.

        Raises
        ------
        ArtifactError
            A missing or corrupt file, another format, or a mesh copy whose
            hash differs from the recorded one.
        """
        root = Path(root)
        meta = read_model_json(root, cls.FORMAT)
        mesh = load_mesh_copy(root, meta)
        net = cls._build_net(meta)
        _load_weights(net, root / WEIGHTS_FILE)
        net.to(map_location).eval()
        return cls(
            net,
            mesh,
            label_kind=meta["label_kind"],
            m1=meta["m1"],
            top_k=meta.get("top_k", TOP_K),
            config=meta.get("config"),
            metrics=meta.get("metrics"),
            provenance=meta.get("provenance"),
            model_id=meta.get("model_id"),
            name=meta.get("name"),
            root=root,
            **cls._from_meta(meta),
        )
