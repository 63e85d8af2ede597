"""M1: a timm CNN backbone plus a linear softmax head over the kept mesh cells.

Two layers (this module re-exports the first so callers need one import):

* :class:`M1Net` (:mod:`trigeo.models.m1_net`), the pure
  ``torch.nn.Module`` (``create_model("m1", ...)``) with timm's contract:
  ``forward_features(x)`` is the backbone's feature map,
  ``forward_head(x, pre_logits=...)`` pools it and (unless ``pre_logits``)
  classifies it into the K kept cells; ``embed(x)`` is the pooled
  descriptor used for retrieval, ``classify(pooled)`` the head alone. With
  several meshes it has one linear head per mesh on the one backbone
  (``classify_heads``); the *primary* head (the mesh with the most cells)
  is the one ``forward`` and ``classify`` answer with.
* :class:`M1Model`, the saved model directory artifact: weights
  (safetensors), a copy of each head's mesh file and its hash, the label
  kind (``imagery`` or ``cell``), the backbone's timm data config, the
  training config, metrics, provenance and optional softmax temperatures.
  ``trigeo predict`` needs nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trigeo.errors import ArtifactError, InputError
from trigeo.models.heads import copy_mesh, load_mesh_copy
from trigeo.models.m1_net import M1Net, check_backbone, resolve_image_config
from trigeo.models.weights import load_backbone_weights
from trigeo.provenance import atomic_path, hash_file, make_provenance, write_json_atomic

__all__ = [
    "LABEL_KINDS",
    "M1Head",
    "M1Model",
    "M1Net",
    "base_model_id",
    "check_backbone",
    "head_record",
    "load_backbone_weights",
    "prediction_model_id",
    "resolve_image_config",
]

LABEL_KINDS = ("imagery", "cell")
MODEL_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
CALIBRATION_FILE = "calibration.json"
FORMAT = "trigeo-m1/1"


@dataclass
class M1Head:
    """One head of an M1: its name, mesh and softmax temperature.

    Attributes
    ----------
    name : str
        Short name (the mesh file's stem at training time: ``coarse``).
    mesh : DelaunayMesh or QuadtreeMesh
    temperature : float
        Softmax temperature from calibration (1.0 = uncalibrated).
    mesh_file : str or None
        The mesh copy's file name inside the model directory.
    """

    name: str
    mesh: Any
    temperature: float = 1.0
    mesh_file: str | None = None

    @property
    def mesh_hash(self) -> str:
        return str(self.mesh.mesh_hash)


def prediction_model_id(model_id: str, head: str | None = None, label: str | None = None) -> str:
    """The model id a predictions file records: ``<M1 id>[@<head>][+<label>]``.

    Each head of a multi-head M1, and a prediction reported at the other
    label kind, is its own row in an evaluation, so each gets its own id.
    """
    return model_id + (f"@{head}" if head else "") + (f"+{label}" if label else "")


def base_model_id(pred_model_id: str) -> str:
    """The M1's own id inside a :func:`prediction_model_id`."""
    return pred_model_id.split("@", 1)[0].split("+", 1)[0]


def head_record(meta: dict[str, Any], mesh_hash: str) -> dict[str, Any]:
    """The head of an M1's ``model.json`` trained on the mesh ``mesh_hash``.

    Returns ``{"name", "mesh_file", "mesh_hash", "num_classes"}``; a
    single-head model's one head comes from the top-level fields.

    Raises
    ------
    InputError
        No head of the model uses that mesh.
    """
    heads = meta.get("heads") or [
        {
            "name": meta.get("name"),
            "mesh_file": meta["mesh_file"],
            "mesh_hash": meta["mesh_hash"],
            "num_classes": meta.get("num_classes"),
        }
    ]
    for head in heads:
        if head["mesh_hash"] == mesh_hash:
            return dict(head)
    raise InputError(
        f"no head of M1 {meta.get('model_id')} uses mesh {mesh_hash} (its heads: "
        + ", ".join(f"{h['name']} {h['mesh_hash']}" for h in heads)
        + "); predict with this M1 again",
        column="mesh_hash",
    )


class M1Model:
    """A trained M1 with everything ``trigeo predict`` needs.

    Attributes
    ----------
    net : M1Net
    heads : list of M1Head
        One per network head, in the network's order; a single-head model
        has one.
    mesh : DelaunayMesh or QuadtreeMesh
        The primary head's mesh (the finest).
    label_kind : {"imagery", "cell"}
        Which point of a cell a prediction reports: the mean position of its
        training photos (``imagery``) or the triangle's centroid (``cell``).
    data_config : dict
        timm data config (input size, interpolation, mean, std, crop).
    config, metrics, provenance : dict
    temperature : float
        The primary head's softmax temperature (1.0 = uncalibrated).
    name : str
        Short display name for tables and reports (``M1 coarse``); ``model_id``
        stays the identity.
    root : Path or None
        The directory it was loaded from.
    """

    def __init__(
        self,
        net: M1Net,
        mesh: Any | Sequence[Any],
        *,
        label_kind: str,
        data_config: dict[str, Any],
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        temperature: float | Sequence[float] = 1.0,
        model_id: str | None = None,
        name: str | None = None,
        root: Path | None = None,
        mesh_files: Sequence[str] | None = None,
    ) -> None:
        if label_kind not in LABEL_KINDS:
            raise InputError(f"label kind must be one of {LABEL_KINDS}, got {label_kind!r}")
        meshes = list(mesh) if isinstance(mesh, (list, tuple)) else [mesh]
        if len(meshes) != net.n_heads:
            raise ArtifactError(f"{len(meshes)} meshes for a network of {net.n_heads} heads")
        temperatures = (
            [float(temperature)] * net.n_heads
            if isinstance(temperature, (int, float))
            else [float(t) for t in temperature]
        )
        files = list(mesh_files) if mesh_files is not None else [None] * net.n_heads
        self.heads = []
        for i, one in enumerate(meshes):
            if one.n_cells_ != net.head_sizes[i]:
                raise ArtifactError(
                    f"mesh of head {net.head_names[i]!r} has {one.n_cells_} cells but the "
                    f"network's head has {net.head_sizes[i]} outputs"
                )
            self.heads.append(M1Head(net.head_names[i], one, temperatures[i], files[i]))
        self.net = net
        self.label_kind = label_kind
        self.data_config = dict(data_config)
        self.config = dict(config or {})
        self.metrics = dict(metrics or {})
        self.provenance = dict(provenance or {})
        self.model_id = model_id or f"m1-{net.backbone_name}-{label_kind}"
        self.name = name or "M1"
        self.root = root

    @property
    def primary(self) -> M1Head:
        return self.heads[self.net.primary]

    @property
    def mesh(self) -> Any:
        return self.primary.mesh

    @property
    def temperature(self) -> float:
        return self.primary.temperature

    @property
    def mesh_hash(self) -> str:
        return self.primary.mesh_hash

    @property
    def is_multi_head(self) -> bool:
        return len(self.heads) > 1

    def head_index(self, name: str) -> int:
        """Position of the head called ``name``; an ``InputError`` lists the names."""
        names = [h.name for h in self.heads]
        if name not in names:
            raise InputError(
                f"model {self.name!r} has no head {name!r}; its heads: {', '.join(names)}",
                column="head",
            )
        return names.index(name)

    def label_points(
        self, head: int | None = None, kind: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of each cell's label point.

        Parameters
        ----------
        head
            Head index (default: the primary head).
        kind
            ``imagery`` or ``cell`` (default: the model's label kind).
        """
        mesh = self.heads[self.net.primary if head is None else head].mesh
        kind = kind or self.label_kind
        if kind not in LABEL_KINDS:
            raise InputError(f"label kind must be one of {LABEL_KINDS}, got {kind!r}")
        lat, lon = mesh.centroids(kind=kind)
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)

    # --- persistence ---------------------------------------------------------------
    def save(
        self,
        root: str | Path,
        mesh_path: str | Path | Sequence[str | Path],
        *,
        inputs: dict[str, str] | None = None,
    ) -> Path:
        """Write the model directory (weights, mesh copies, ``model.json``) atomically.

        Parameters
        ----------
        root
            Target directory (created; other files in it are kept).
        mesh_path
            The mesh file the model was trained with (one per head, in head
            order); each is copied into ``root``.
        inputs
            Input name -> content hash, recorded in the provenance.
        """
        from safetensors.torch import save_file

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        paths = (
            [Path(mesh_path)] if isinstance(mesh_path, (str, Path)) else list(map(Path, mesh_path))
        )
        if len(paths) != len(self.heads):
            raise ArtifactError(f"{len(paths)} mesh files for {len(self.heads)} heads")
        for spec, path in zip(self.heads, paths, strict=True):
            stem = f"mesh-{spec.name}" if self.is_multi_head else "mesh"
            spec.mesh_file = copy_mesh(root, path, stem)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(root / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"format": FORMAT})
        weights_hash = hash_file(root / WEIGHTS_FILE)
        self.model_id = f"m1-{self.net.backbone_name}-{self.label_kind}-{weights_hash[:10]}"
        mesh_inputs = {
            ("mesh" if not self.is_multi_head else f"mesh:{h.name}"): hash_file(root / h.mesh_file)
            for h in self.heads
        }
        self.provenance = make_provenance(
            self.config,
            {**mesh_inputs, **(inputs or {})},
            **{
                k: v
                for k, v in self.provenance.items()
                if k not in ("config", "inputs", "trigeo_version", "created_at")
            },
        )
        primary = self.primary
        record = {
            "format": FORMAT,
            "model_id": self.model_id,
            "name": self.name,
            "backbone": self.net.backbone_name,
            "num_classes": self.net.num_classes,
            "num_features": self.net.num_features,
            "label_kind": self.label_kind,
            "mesh_file": primary.mesh_file,
            "mesh_hash": primary.mesh_hash,
            "weights_sha256": weights_hash,
            "data_config": self.data_config,
            "config": self.config,
            "metrics": self.metrics,
            "provenance": self.provenance,
        }
        if self.is_multi_head:
            record["primary_head"] = primary.name
            record["heads"] = [
                {
                    "name": h.name,
                    "num_classes": int(h.mesh.n_cells_),
                    "mesh_file": h.mesh_file,
                    "mesh_hash": h.mesh_hash,
                }
                for h in self.heads
            ]
        write_json_atomic(root / MODEL_FILE, record)
        self.root = root
        return root

    def save_temperature(self, temperature: float, head: int | None = None, **details: Any) -> None:
        """Store a calibration temperature (of ``head``, default the primary) in the model dir."""
        if self.root is None:
            raise ArtifactError("save the model before storing a calibration temperature")
        self.heads[self.net.primary if head is None else head].temperature = float(temperature)
        write_json_atomic(
            self.root / CALIBRATION_FILE,
            {
                "temperature": self.temperature,
                "temperatures": {h.name: h.temperature for h in self.heads},
                "provenance": make_provenance(details),
            },
        )

    @classmethod
    def load(cls, root: str | Path, map_location: str | torch.device = "cpu") -> M1Model:
        """Load a model directory written by :meth:`save`.

        Raises
        ------
        ArtifactError
            If a file is missing or corrupt, or a mesh copy does not match its
            recorded mesh hash.
        """
        from safetensors.torch import load_file

        root = Path(root)
        meta_path = root / MODEL_FILE
        if not meta_path.exists():
            raise ArtifactError(f"{root}: no {MODEL_FILE}; is this a trigeo M1 model directory?")
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{meta_path}: corrupt JSON ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise ArtifactError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT}")
        heads = meta.get("heads") or [
            {"name": "head0", "mesh_file": meta["mesh_file"], "mesh_hash": meta["mesh_hash"]}
        ]
        meshes = [load_mesh_copy(root, head) for head in heads]
        names = [h["name"] for h in heads]
        net = M1Net(
            meta["backbone"],
            [int(m.n_cells_) for m in meshes] if len(heads) > 1 else meta["num_classes"],
            head_names=names,
            primary=names.index(meta["primary_head"]) if "primary_head" in meta else None,
        )
        weights_path = root / WEIGHTS_FILE
        try:
            state = load_file(str(weights_path))
            net.load_state_dict(state)
        except Exception as exc:
            raise ArtifactError(f"{weights_path}: cannot load weights ({exc})") from exc
        net.to(map_location).eval()
        temperatures = [1.0] * len(heads)
        calibration = root / CALIBRATION_FILE
        if calibration.exists():
            stored = json.loads(calibration.read_text("utf-8"))
            by_head = stored.get("temperatures") or {}
            temperatures = [
                float(by_head.get(name, stored["temperature"] if len(heads) == 1 else 1.0))
                for name in names
            ]
        return cls(
            net,
            meshes,
            label_kind=meta["label_kind"],
            data_config=meta["data_config"],
            config=meta.get("config"),
            metrics=meta.get("metrics"),
            provenance=meta.get("provenance"),
            temperature=temperatures,
            model_id=meta.get("model_id"),
            name=meta.get("name"),
            root=root,
            mesh_files=[h["mesh_file"] for h in heads],
        )
