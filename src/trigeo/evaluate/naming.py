"""Short display names of evaluated models: what tables, figures and metrics.json call a row.

A model's identity is its ``model_id`` (``m1-test_resnet-imagery-c835f3f09c``),
which is too long for a table column. Each model is shown under a short
display name instead, and the report keeps the full id in a footnote:

1. ``--name`` on the command line (applied to ``Predictions.model_name``);
2. else the ``model_name`` the predictions file carries (``M1 coarse``);
3. else the source file's stem, without a trailing hash and cut to
   :data:`MAX_DERIVED_CHARS` characters.

Names shared by several models are numbered (``M1 coarse #1``,
``M1 coarse #2``) with a warning, so every row of every table stays distinct.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath

from trigeo.evaluate.inputs import EvaluationWarning
from trigeo.predictions import Predictions

__all__ = ["MAX_DERIVED_CHARS", "derived_name", "display_name", "display_names"]

#: Longest name derived from a file name; with the ``+album-avg`` suffix of an
#: averaged row it still leaves the console table room at 80 columns.
MAX_DERIVED_CHARS = 20

# File endings that say nothing about the model.
_ENDINGS = (".parquet", ".csv", ".tsv", ".txt", ".json", ".gz", ".bz2", ".zst", ".xz")
# A trailing hex digest (with at least one digit, so that words such as
# "facade" survive): it identifies a model but does not describe it.
_HASH_TAIL = re.compile(r"[-_.](?=[0-9a-f]*[0-9])[0-9a-f]{8,}$")


def derived_name(source: str) -> str:
    """A short name from a source file name: its stem, no trailing hash, at most 20 chars.

    Examples
    --------
    >>> derived_name("runs/m1-test_resnet-imagery-c835f3f09c.parquet")
    'm1-test_resnet-imag…'
    >>> derived_name("peers/their-system.csv.gz")
    'their-system'
    """
    name = PurePath(str(source)).name
    while name.lower().endswith(_ENDINGS):
        name = name[: name.rfind(".")]
    name = _HASH_TAIL.sub("", name) or name
    if len(name) > MAX_DERIVED_CHARS:
        name = name[: MAX_DERIVED_CHARS - 1].rstrip(" -_.") + "…"
    return name or "model"


def display_name(preds: Predictions, source: str) -> str:
    """The model's own display name, or one derived from ``source`` (not yet made unique)."""
    given = (preds.model_name or "").strip()
    return given or derived_name(source)


def _next_free(name: str, taken: set[str]) -> str:
    """The first of ``name #1``, ``name #2``, ... not in ``taken`` (which it is added to)."""
    number = 1
    while f"{name} #{number}" in taken:
        number += 1
    taken.add(f"{name} #{number}")
    return f"{name} #{number}"


def display_names(predictions: Sequence[tuple[str, Predictions]]) -> list[str]:
    """A distinct display name per model, in order.

    Names that several models share are numbered ``#1``, ``#2``, ... in input
    order, with an :class:`EvaluationWarning` that says which model got which.
    """
    names = [display_name(preds, source) for source, preds in predictions]
    counts = Counter(names)
    taken = {n for n in names if counts[n] == 1}
    unique = list(names)
    renamed: dict[str, list[str]] = {}
    for i, (name, (_, preds)) in enumerate(zip(names, predictions, strict=True)):
        if counts[name] > 1:
            unique[i] = _next_free(name, taken)
            renamed.setdefault(name, []).append(f"{unique[i]!r} ({preds.model_id})")
    for name, shown in renamed.items():
        warnings.warn(
            f"{len(shown)} models have the display name {name!r}; they are shown as "
            f"{', '.join(shown)}. Give each its own --name to choose.",
            EvaluationWarning,
            stacklevel=2,
        )
    return unique
