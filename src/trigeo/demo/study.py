"""The reference study's published numbers (``study.json``), loaded and checked.

``study.json`` is a transcription of shared/design/paper-notes.md: the best
possible accuracy table (mesh x label), the headline results on YFCC100M
validation, Table 7 (KL divergence, entropy, mean and median error), the
outdoor-only gain and the significance of the time gain. paper-notes gives the
outdoor gain only in words (no outdoor-only rows of Table 6), so
``outdoor_gain.rows`` is null and says why. The
demo report prints these numbers in grey beside this run's, so a typo here
would mislead every reader: :func:`load_study_numbers` checks the shape and
the ranges before anything uses them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from trigeo.errors import ArtifactError
from trigeo.sphere import STUDY_THRESHOLDS_KM

__all__ = [
    "STUDY_THRESHOLDS_KM",
    "StudyErrors",
    "StudyNumbers",
    "StudyRow",
    "load_study_numbers",
    "study_key",
]

#: The study's accuracy thresholds; ``study.json`` must use exactly these.


def study_key(threshold_km: float) -> str:
    """The per-threshold key of ``study.json`` and metrics.json (``25 -> "25km"``)."""
    return f"{threshold_km:g}km"


@dataclass(frozen=True)
class StudyRow:
    """One published row: accuracy (percent within each threshold) by threshold key."""

    name: str
    accuracy_pct: dict[str, float]

    def at(self, threshold_km: float) -> float:
        """Accuracy at one of :data:`STUDY_THRESHOLDS_KM`."""
        return self.accuracy_pct[study_key(threshold_km)]


@dataclass(frozen=True)
class StudyErrors:
    """One row of the study's Table 7: class-frequency and error statistics of a model."""

    name: str
    kl: float
    entropy: float
    mean_km: float
    median_km: float


@dataclass(frozen=True)
class StudyNumbers:
    """The study's numbers that the demo report compares against.

    Attributes
    ----------
    source : str
        The study's tables, in words (printed under every grey number).
    thresholds_km : tuple of float
        The accuracy thresholds.
    cells : dict
        Cells kept by the study's meshes (``coarse``, ``fine``, ``fineP``).
    photos : dict
        The study's ``train`` and ``validation`` photo counts.
    best_possible : dict
        ``(mesh, label)`` -> best possible accuracy row (``("coarse", "imagery")``).
    headline : dict
        Key -> headline row; keys name demo roles (``m1_coarse``, ``m1_fine``,
        ``m2``, ``m3``) or ``user_avg`` / ``m2_fine``.
    errors : dict
        Key -> Table 7 row (KL, entropy, mean and median km); keys as in
        ``headline`` plus ``best_coarse`` / ``best_fine``.
    outdoor_gain_points : tuple of float
        The published range of the outdoor-only gain, in accuracy points.
    outdoor_thresholds_km : tuple of float
        The thresholds ("region and country level") that range applies to.
    outdoor_text, time_text : str
        The two claims in the study's words.
    outdoor_rows_note : str
        Why there are no outdoor-only rows (paper-notes gives the gain in words only).
    time_p_below, time_photos
        The time gain's Wilcoxon p-value bound and the photos it was tested on.
    """

    source: str
    thresholds_km: tuple[float, ...]
    cells: dict[str, int]
    photos: dict[str, int]
    best_possible: dict[tuple[str, str], StudyRow]
    headline: dict[str, StudyRow]
    errors: dict[str, StudyErrors]
    outdoor_gain_points: tuple[float, float]
    outdoor_thresholds_km: tuple[float, ...]
    outdoor_text: str
    outdoor_rows_note: str
    time_text: str
    time_p_below: float
    time_photos: int


def _field(obj: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise ArtifactError(f"{where}: missing field {name!r}")
    value = obj[name]
    # bool is an int subclass; a true/false where a number belongs is a typo.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ArtifactError(f"{where}: field {name!r} should be {kind}, got {value!r}")
    return value


def _accuracy(obj: Any, where: str) -> dict[str, float]:
    """A row's accuracies: exactly the study's thresholds, 0-100, non-decreasing."""
    acc = _field(obj, "accuracy_pct", dict, where)
    keys = [study_key(t) for t in STUDY_THRESHOLDS_KM]
    if sorted(acc) != sorted(keys):
        raise ArtifactError(f"{where}: accuracy_pct keys {sorted(acc)} should be {keys}")
    values = [_field(acc, key, (int, float), f"{where}.accuracy_pct") for key in keys]
    for key, value in zip(keys, values, strict=True):
        if not (math.isfinite(value) and 0.0 <= value <= 100.0):
            raise ArtifactError(f"{where}: accuracy at {key} is {value}, not a percentage")
    # Accuracy within a larger radius can only be higher: a drop is a transcription error.
    for (k1, v1), (k2, v2) in zip(
        zip(keys, values, strict=True), zip(keys[1:], values[1:], strict=True), strict=False
    ):
        if v2 < v1:
            raise ArtifactError(f"{where}: accuracy falls from {v1} at {k1} to {v2} at {k2}")
    return {key: float(v) for key, v in zip(keys, values, strict=True)}


_ERROR_FIELDS = ("kl", "entropy", "mean_km", "median_km")


def _errors(raw: Any, where: str) -> dict[str, StudyErrors]:
    """Table 7: KL and entropy (nats, non-negative) and errors (km, positive) by key."""
    rows: dict[str, StudyErrors] = {}
    for i, row in enumerate(_field(_field(raw, "table7", dict, where), "rows", list, where)):
        at = f"{where}.table7.rows[{i}]"
        values = {f: float(_field(row, f, (int, float), at)) for f in _ERROR_FIELDS}
        for name, value in values.items():
            # KL of a perfect predictor is 0; an error of 0 km would be a transcription slip.
            low_ok = value >= 0 if name in ("kl", "entropy") else value > 0
            if not (math.isfinite(value) and low_ok):
                raise ArtifactError(f"{at}: {name} is {value}, out of range")
        rows[_field(row, "key", str, at)] = StudyErrors(_field(row, "model", str, at), **values)
    for needed in ("m1_coarse", "m2", "m3", "user_avg"):
        if needed not in rows:
            raise ArtifactError(f"{where}: table7 has no row with key {needed!r}")
    return rows


def _parse(raw: Any, where: str) -> StudyNumbers:
    source = _field(raw, "source", str, where)
    thresholds = tuple(float(t) for t in _field(raw, "thresholds_km", list, where))
    if thresholds != STUDY_THRESHOLDS_KM:
        raise ArtifactError(f"{where}: thresholds_km {thresholds} should be {STUDY_THRESHOLDS_KM}")
    cells_raw = _field(raw, "cells", dict, where)
    cells = {k: int(_field(cells_raw, k, int, f"{where}.cells")) for k in cells_raw}
    for needed_mesh in ("coarse", "fine"):
        _field(cells_raw, needed_mesh, int, f"{where}.cells")
    photos = {
        k: int(_field(_field(raw, "photos", dict, where), k, int, f"{where}.photos"))
        for k in ("train", "validation")
    }
    best: dict[tuple[str, str], StudyRow] = {}
    for i, row in enumerate(_field(_field(raw, "best_possible", dict, where), "rows", list, where)):
        at = f"{where}.best_possible.rows[{i}]"
        mesh, label = _field(row, "mesh", str, at), _field(row, "label", str, at)
        if label not in ("cell", "imagery"):
            raise ArtifactError(f"{at}: label {label!r} should be 'cell' or 'imagery'")
        best[(mesh, label)] = StudyRow(f"{mesh}, {label} centroid", _accuracy(row, at))
    for needed in (
        ("coarse", "cell"),
        ("coarse", "imagery"),
        ("fine", "cell"),
        ("fine", "imagery"),
    ):
        if needed not in best:
            raise ArtifactError(f"{where}: best_possible has no row for {needed[0]}/{needed[1]}")
    headline: dict[str, StudyRow] = {}
    for i, row in enumerate(_field(_field(raw, "headline", dict, where), "rows", list, where)):
        at = f"{where}.headline.rows[{i}]"
        headline[_field(row, "key", str, at)] = StudyRow(
            _field(row, "model", str, at), _accuracy(row, at)
        )
    for needed_key in ("m1_coarse", "m1_fine", "m2", "m3", "user_avg"):
        if needed_key not in headline:
            raise ArtifactError(f"{where}: headline has no row with key {needed_key!r}")
    outdoor = _field(raw, "outdoor_gain", dict, where)
    gain = (
        float(_field(outdoor, "min_points", (int, float), f"{where}.outdoor_gain")),
        float(_field(outdoor, "max_points", (int, float), f"{where}.outdoor_gain")),
    )
    if not 0 < gain[0] <= gain[1]:
        raise ArtifactError(f"{where}: outdoor_gain range {gain} is not 0 < min <= max")
    time = _field(raw, "time_significance", dict, where)
    p_below = float(_field(time, "p_below", (int, float), f"{where}.time_significance"))
    if not 0 < p_below < 1:
        raise ArtifactError(f"{where}: time_significance.p_below {p_below} is not in (0, 1)")
    return StudyNumbers(
        source=source,
        thresholds_km=thresholds,
        cells=cells,
        photos=photos,
        best_possible=best,
        headline=headline,
        errors=_errors(raw, where),
        outdoor_gain_points=gain,
        outdoor_thresholds_km=tuple(
            float(t) for t in _field(outdoor, "thresholds_km", list, f"{where}.outdoor_gain")
        ),
        outdoor_text=_field(outdoor, "text", str, f"{where}.outdoor_gain"),
        outdoor_rows_note=_outdoor_rows_note(outdoor, f"{where}.outdoor_gain"),
        time_text=_field(time, "text", str, f"{where}.time_significance"),
        time_p_below=p_below,
        time_photos=int(_field(time, "photos", int, f"{where}.time_significance")),
    )


def _outdoor_rows_note(outdoor: dict[str, Any], where: str) -> str:
    """The note on outdoor-only rows; a non-null ``rows`` is refused until something reads it."""
    if outdoor.get("rows") is not None:
        # Nothing reads outdoor rows yet: accepting them silently would hide them.
        raise ArtifactError(f"{where}: 'rows' is not read yet; leave it null and say why")
    return str(_field(outdoor, "source", str, where))


def load_study_numbers(path: str | Path | None = None) -> StudyNumbers:
    """Load and check the study's published numbers.

    Parameters
    ----------
    path
        A ``study.json`` to read instead of the one shipped in the package.

    Returns
    -------
    StudyNumbers

    Raises
    ------
    ArtifactError
        When the file is missing, is not JSON, or a field is missing, of the
        wrong type, not a percentage, or falls with a larger threshold (the
        message names the field).
    """
    if path is None:
        where = "trigeo/demo/study.json"
        resource = resources.files("trigeo.demo").joinpath("study.json")
        if not resource.is_file():
            raise ArtifactError(f"{where} is missing from the installed package (package data)")
        text = resource.read_text("utf-8")
    else:
        where = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            raise ArtifactError(f"{where}: no such study numbers file") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{where}: not valid JSON ({err})") from None
    return _parse(raw, where)
