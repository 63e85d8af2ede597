"""Places365 scene classifiers: the indoor/outdoor list, checkpoint loading and the rule.

The public Places365 CNNs (CSAILVision/places365) classify a photo into 365
scene categories, each flagged indoor or outdoor in ``io_places365.txt``
(shipped in this package, with its source). The standard rule scores a photo
by the mean outdoor flag over its 10 most probable categories, as the
authors' own demo does, which gives P(outdoor) in steps of 0.1.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigeo.errors import InputError

__all__ = [
    "ARCHITECTURES",
    "N_CATEGORIES",
    "WEIGHTS_URL",
    "build_places_net",
    "load_places_checkpoint",
    "outdoor_flags",
    "outdoor_probability",
    "places_categories",
    "places_transform",
]

N_CATEGORIES = 365
ARCHITECTURES = ("resnet18", "resnet50", "densenet161")
TOP_K = 10
WEIGHTS_URL = "http://places2.csail.mit.edu/models_places365/"
# The published DenseNet checkpoints predate torchvision's renaming of "norm.1" to "norm1".
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


@cache
def _io_table() -> tuple[tuple[str, ...], NDArray[np.int8]]:
    text = (resources.files("trigeo.scenes") / "io_places365.txt").read_text("utf-8")
    names, flags = [], []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, flag = line.rsplit(" ", 1)
        names.append(name)
        flags.append(int(flag) - 1)  # file: 1 = indoor, 2 = outdoor
    if len(names) != N_CATEGORIES:
        raise RuntimeError(f"io_places365.txt lists {len(names)} categories, not {N_CATEGORIES}")
    return tuple(names), np.asarray(flags, dtype=np.int8)


def places_categories() -> tuple[str, ...]:
    """The 365 category names (``/a/airfield`` ...) in the models' class order."""
    return _io_table()[0]


def outdoor_flags() -> NDArray[np.int8]:
    """Per category: 0 = indoor, 1 = outdoor."""
    return _io_table()[1].copy()


def outdoor_probability(logits: ArrayLike, top_k: int = TOP_K) -> NDArray[np.float64]:
    """P(outdoor) per photo: the mean outdoor flag over its ``top_k`` categories.

    Parameters
    ----------
    logits
        ``(n, 365)`` scores (logits or probabilities: only their order matters).
    """
    scores = np.asarray(logits, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != N_CATEGORIES:
        raise ValueError(f"expected (n, {N_CATEGORIES}) scores, got {scores.shape}")
    top = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
    return outdoor_flags()[top].mean(axis=1)


def build_places_net(arch: str) -> Any:
    """A torchvision network with a 365-way classifier (random weights)."""
    from torchvision import models

    if arch not in ARCHITECTURES:
        raise InputError(
            f"unknown Places365 architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}",
            column="arch",
        )
    return getattr(models, arch)(num_classes=N_CATEGORIES)


def load_places_checkpoint(path: str | Path, arch: str) -> Any:
    """Load a published Places365 checkpoint (e.g. ``resnet18_places365.pth.tar``).

    The published files hold ``{"state_dict": {"module.<name>": tensor}, ...}``
    (saved from ``DataParallel``). Nothing is downloaded.

    Raises
    ------
    InputError
        Missing or unreadable file, or a layout that is not a Places365
        checkpoint of ``arch`` (the message says where the public weights are).
    """
    import torch

    path = Path(path)
    hint = f"the public Places365 weights are published at {WEIGHTS_URL} ({arch}_places365.pth.tar)"
    if not path.exists():
        raise InputError(f"weights file not found; {hint}", source=path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise InputError(
            f"cannot read a checkpoint ({type(exc).__name__}: {exc}); {hint}", source=path
        ) from exc
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(
            f"not a Places365 checkpoint (no state_dict of tensors); {hint}", source=path
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if arch.startswith("densenet"):
        state = {_DENSENET_KEY.sub(lambda m: m[1] + m[2].replace(".", "", 1), k): v
                 for k, v in state.items()}  # fmt: skip
    net = build_places_net(arch)
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        detail = (
            f"missing {missing[:3]}" if missing else
            f"{wrong[0]}: file {tuple(state[wrong[0]].shape)} vs {tuple(own[wrong[0]].shape)}"
        )  # fmt: skip
        raise InputError(
            f"weights do not fit a 365-class {arch} ({detail}); pass --arch for the file's "
            f"architecture, or {hint}",
            source=path,
        )
    net.load_state_dict({k: state[k] for k in own})
    return net.eval()


class PlacesTransform:
    """The Places365 models' preprocessing: 224 x 224 resize, ImageNet normalisation.

    A class rather than a closure so DataLoader workers can pickle it.
    """

    def __init__(self) -> None:
        from torchvision import transforms

        self.transform = transforms.Compose(
            [
                transforms.Resize((224, 224)),
                transforms.ToTensor(),
                transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )

    def __call__(self, image: Any) -> Any:
        return self.transform(image)


def places_transform() -> PlacesTransform:
    """Preprocessing for the Places365 CNNs (as in the authors' demo)."""
    return PlacesTransform()
