"""M1: a timm CNN backbone plus a linear softmax head over the kept mesh cells.

Two layers live here:

* :class:`M1Net`, the pure ``torch.nn.Module`` (``create_model("m1", ...)``)
  with timm's contract: ``forward_features(x)`` is the backbone's feature
  map, ``forward_head(x, pre_logits=...)`` pools it and (unless
  ``pre_logits``) classifies it into the K kept cells; ``embed(x)`` is the
  pooled descriptor used for retrieval, ``classify(pooled)`` the head alone.
* :class:`M1Model`, the saved model directory artifact: weights
  (safetensors), a copy of the mesh file and its hash, the label kind
  (``imagery`` or ``cell``), the backbone's timm data config, the training
  config, metrics, provenance and an optional softmax temperature.
  ``trigeo predict`` needs nothing else.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trigeo.errors import ArtifactError, InputError
from trigeo.models.registry import register_model
from trigeo.provenance import atomic_path, hash_file, make_provenance, write_json_atomic

__all__ = [
    "LABEL_KINDS",
    "M1Model",
    "M1Net",
    "check_backbone",
    "load_backbone_weights",
    "load_model",
    "resolve_image_config",
]

LABEL_KINDS = ("imagery", "cell")
MODEL_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
CALIBRATION_FILE = "calibration.json"
FORMAT = "trigeo-m1/1"


def check_backbone(name: str) -> None:
    """Raise an ``InputError`` suggesting close timm names if ``name`` is unknown."""
    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
    raise InputError(f"unknown timm backbone {name!r}{hint}", column="backbone")


@register_model("m1")
class M1Net(nn.Module):
    """A timm backbone (classifier removed) followed by a linear head over K cells.

    Parameters
    ----------
    backbone
        Any timm model name (``inception_v4`` for real photos, ``resnet10t``
        or ``test_resnet`` for small demos).
    num_classes
        K, the number of kept mesh cells.
    pretrained
        Let timm fetch pretrained weights. Off by default: nothing is
        downloaded at run time; use :func:`load_backbone_weights` with a local file.
    drop_rate
        Dropout before the head (timm's ``drop_rate``).
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        *,
        pretrained: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        import timm

        check_backbone(backbone)
        if num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone_name = backbone
        self.num_classes = int(num_classes)
        # num_classes=0 makes timm return pooled pre-logit features.
        self.backbone = timm.create_model(
            backbone, pretrained=pretrained, num_classes=0, drop_rate=drop_rate
        )
        self.num_features = int(self.backbone.num_features)
        self.head = nn.Linear(self.num_features, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's unpooled feature map (timm's contract), e.g. ``(B, C, H, W)``."""
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a feature map and classify it (timm's contract).

        Parameters
        ----------
        x
            Output of :meth:`forward_features`.
        pre_logits
            Return the pooled features ``(B, num_features)`` instead of the
            logits over the K cells.
        """
        # The backbone was built with num_classes=0, so its own head stops at pooling
        # (and its drop_rate dropout).
        pooled = self.backbone.forward_head(x, pre_logits=True)
        return pooled if pre_logits else self.head(pooled)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits over the K cells from pooled features (cached-feature training)."""
        return self.head(pooled)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features ``(B, num_features)`` (retrieval descriptors)."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def freeze_backbone(self) -> None:
        """Stop gradients into the backbone (the head stays trainable)."""
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)


def resolve_image_config(backbone: nn.Module, image_size: int | None = None) -> dict[str, Any]:
    """The backbone's timm data config, optionally at a square ``image_size``.

    Returns a JSON-serializable dict (tuples become lists) with ``input_size``,
    ``interpolation``, ``mean``, ``std``, ``crop_pct`` and ``crop_mode``.
    """
    from timm.data import resolve_data_config

    args: dict[str, Any] = {}
    if image_size is not None:
        args["input_size"] = (3, int(image_size), int(image_size))
    config = resolve_data_config(args, model=backbone)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise InputError("weights file not found", source=path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for a bad file
        raise InputError(f"cannot read weights ({type(exc).__name__}: {exc})", source=path) from exc
    for wrapper in ("state_dict", "model", "state_dict_ema", "model_ema"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError("not a state dict of tensors", source=path)
    return dict(state)


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load local ImageNet weights (timm checkpoint or safetensors) into a backbone.

    The ImageNet classifier is dropped (M1 has its own head); prefixes such as
    ``module.`` (DDP) or ``backbone.`` (a trigeo M1 file) are stripped.

    Returns
    -------
    dict
        ``loaded`` (count), ``missing`` and ``unexpected`` key lists, ``dropped``
        (classifier keys left out).

    Raises
    ------
    InputError
        If the file cannot be read, a tensor's shape does not fit the backbone,
        or no key matches at all (weights of another architecture).
    """
    path = Path(path)
    state = _read_state_dict(path)
    for prefix in ("module.", "backbone.", "model."):
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    if state and all(k.startswith(("backbone.", "head.")) for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    classifier = getattr(backbone, "pretrained_cfg", {}).get("classifier") or "fc"
    classifiers = [classifier] if isinstance(classifier, str) else list(classifier)
    own = backbone.state_dict()
    dropped = [k for k in state if k not in own and any(k.startswith(c + ".") for c in classifiers)]
    state = {k: v for k, v in state.items() if k not in dropped}
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        more = f" (+{len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
        raise InputError(
            f"weights do not fit backbone {type(backbone).__name__}: {'; '.join(mismatched[:3])}"
            f"{more}",
            source=path,
        )
    matched = [k for k in state if k in own]
    if not matched:
        raise InputError(
            f"no tensor name matches backbone {type(backbone).__name__} "
            f"(file has e.g. {list(state)[:3]}, model has e.g. {list(own)[:3]}); "
            "are these weights for another architecture?",
            source=path,
        )
    result = backbone.load_state_dict(state, strict=False)
    return {
        "loaded": len(matched),
        "missing": list(result.missing_keys),
        "unexpected": list(result.unexpected_keys),
        "dropped": dropped,
    }


class M1Model:
    """A trained M1 with everything ``trigeo predict`` needs.

    Attributes
    ----------
    net : M1Net
    mesh : DelaunayMesh
    label_kind : {"imagery", "cell"}
        Which point of a cell a prediction reports: the mean position of its
        training photos (``imagery``) or the triangle's centroid (``cell``).
    data_config : dict
        timm data config (input size, interpolation, mean, std, crop).
    config, metrics, provenance : dict
    temperature : float
        Softmax temperature from calibration (1.0 = uncalibrated).
    name : str
        Short display name for tables and reports (``M1 coarse``); ``model_id``
        stays the identity.
    root : Path or None
        The directory it was loaded from.
    """

    def __init__(
        self,
        net: M1Net,
        mesh: Any,
        *,
        label_kind: str,
        data_config: dict[str, Any],
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        temperature: float = 1.0,
        model_id: str | None = None,
        name: str | None = None,
        root: Path | None = None,
    ) -> None:
        if label_kind not in LABEL_KINDS:
            raise InputError(f"label kind must be one of {LABEL_KINDS}, got {label_kind!r}")
        if mesh.n_cells_ != net.num_classes:
            raise ArtifactError(
                f"mesh has {mesh.n_cells_} cells but the network has {net.num_classes} outputs"
            )
        self.net = net
        self.mesh = mesh
        self.label_kind = label_kind
        self.data_config = dict(data_config)
        self.config = dict(config or {})
        self.metrics = dict(metrics or {})
        self.provenance = dict(provenance or {})
        self.temperature = float(temperature)
        self.model_id = model_id or f"m1-{net.backbone_name}-{label_kind}"
        self.name = name or "M1"
        self.root = root

    @property
    def mesh_hash(self) -> str:
        return str(self.mesh.mesh_hash)

    def label_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lon) of each cell's label point for this model's label kind."""
        lat, lon = self.mesh.centroids(kind=self.label_kind)
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)

    # --- persistence ---------------------------------------------------------------
    def save(
        self,
        root: str | Path,
        mesh_path: str | Path,
        *,
        inputs: dict[str, str] | None = None,
    ) -> Path:
        """Write the model directory (weights, mesh copy, ``model.json``) atomically.

        Parameters
        ----------
        root
            Target directory (created; other files in it are kept).
        mesh_path
            The mesh file the model was trained with; it is copied into ``root``.
        inputs
            Input name -> content hash, recorded in the provenance.
        """
        from safetensors.torch import save_file

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        mesh_path = Path(mesh_path)
        mesh_file = "mesh" + "".join(mesh_path.suffixes)
        if mesh_path.resolve() != (root / mesh_file).resolve():
            with atomic_path(root / mesh_file) as tmp:
                shutil.copyfile(mesh_path, tmp)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(root / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata={"format": FORMAT})
        weights_hash = hash_file(root / WEIGHTS_FILE)
        self.model_id = f"m1-{self.net.backbone_name}-{self.label_kind}-{weights_hash[:10]}"
        record_inputs = {"mesh": hash_file(root / mesh_file), **(inputs or {})}
        self.provenance = make_provenance(
            self.config,
            record_inputs,
            **{
                k: v
                for k, v in self.provenance.items()
                if k not in ("config", "inputs", "trigeo_version", "created_at")
            },
        )
        record = {
            "format": FORMAT,
            "model_id": self.model_id,
            "name": self.name,
            "backbone": self.net.backbone_name,
            "num_classes": self.net.num_classes,
            "num_features": self.net.num_features,
            "label_kind": self.label_kind,
            "mesh_file": mesh_file,
            "mesh_hash": self.mesh_hash,
            "weights_sha256": weights_hash,
            "data_config": self.data_config,
            "config": self.config,
            "metrics": self.metrics,
            "provenance": self.provenance,
        }
        write_json_atomic(root / MODEL_FILE, record)
        self.root = root
        return root

    def save_temperature(self, temperature: float, **details: Any) -> None:
        """Store a calibration temperature in the model directory."""
        if self.root is None:
            raise ArtifactError("save the model before storing a calibration temperature")
        self.temperature = float(temperature)
        write_json_atomic(
            self.root / CALIBRATION_FILE,
            {"temperature": self.temperature, "provenance": make_provenance(details)},
        )

    @classmethod
    def load(cls, root: str | Path, map_location: str | torch.device = "cpu") -> M1Model:
        """Load a model directory written by :meth:`save`.

        Raises
        ------
        ArtifactError
            If a file is missing or corrupt, or the mesh copy does not match
            the recorded mesh hash.
        """
        from safetensors.torch import load_file

        from trigeo.mesh import load_mesh

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
        mesh_path = root / meta["mesh_file"]
        if not mesh_path.exists():
            raise ArtifactError(f"{root}: mesh copy {meta['mesh_file']} is missing")
        mesh = load_mesh(mesh_path)
        if str(mesh.mesh_hash) != meta["mesh_hash"]:
            raise ArtifactError(
                f"{mesh_path}: mesh hash {mesh.mesh_hash} differs from the recorded "
                f"{meta['mesh_hash']}; the model directory was modified"
            )
        net = M1Net(meta["backbone"], meta["num_classes"])
        weights_path = root / WEIGHTS_FILE
        try:
            state = load_file(str(weights_path))
            net.load_state_dict(state)
        except Exception as exc:
            raise ArtifactError(f"{weights_path}: cannot load weights ({exc})") from exc
        net.to(map_location).eval()
        temperature = 1.0
        calibration = root / CALIBRATION_FILE
        if calibration.exists():
            temperature = float(json.loads(calibration.read_text("utf-8"))["temperature"])
        return cls(
            net,
            mesh,
            label_kind=meta["label_kind"],
            data_config=meta["data_config"],
            config=meta.get("config"),
            metrics=meta.get("metrics"),
            provenance=meta.get("provenance"),
            temperature=temperature,
            model_id=meta.get("model_id"),
            name=meta.get("name"),
            root=root,
        )


def load_model(root: str | Path, map_location: str | torch.device = "cpu") -> M1Model:
    """Load a saved M1 model directory (see :meth:`M1Model.load`)."""
    return M1Model.load(root, map_location=map_location)
