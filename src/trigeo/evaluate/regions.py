"""Where each model goes wrong: accuracy by continent and country confusions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trigeo.evaluate.geography import CONTINENT_NAMES, country_confusions, country_of
from trigeo.evaluate.results import EvaluationConfig, ModelResult
from trigeo.evaluate.scoring import accuracy_block, truth_users
from trigeo.evaluate.truth import Truth

__all__ = ["confusion_tables", "continent_table"]


def continent_table(
    models: list[ModelResult], truth: Truth, config: EvaluationConfig
) -> pd.DataFrame:
    """Accuracy (with bootstrap intervals) and median error per model and true continent.

    Returns
    -------
    DataFrame
        One row per (model, continent): ``model``, ``continent``, ``photos``,
        ``median_km``, and per threshold ``<t>km`` and ``<t>km_ci`` (resampling
        ``config.ci_unit``).
    """
    records = []
    continent = truth.continent
    for model in models:
        codes = continent[model.truth_rows]
        users = truth_users(truth, model.truth_rows)
        for code in sorted(np.unique(codes)):
            mask = codes == code
            block = accuracy_block(
                model.errors_km[mask], config, None if users is None else users[mask]
            )
            record = {
                "model": model.name,
                "continent": CONTINENT_NAMES.get(code, code),
                "photos": block["photos"],
                "median_km": float(np.median(model.errors_km[mask])),
            }
            for t, acc, lo, hi in zip(
                config.thresholds_km, block["accuracy"], block["low"], block["high"], strict=True
            ):
                record[f"{t:g}km"] = float(acc)
                record[f"{t:g}km_ci"] = [float(lo), float(hi)]
            records.append(record)
    return pd.DataFrame.from_records(records)


def confusion_tables(models: list[ModelResult], truth: Truth) -> dict[str, pd.DataFrame]:
    """Each model's most frequent (true, predicted) country pairs that differ.

    Also stores each model's predicted countries in ``pred_country``, so that
    the report's confusion figures do not geocode them again.
    """
    confusions = {}
    for model in models:
        answered = model.answered
        true_country = truth.country[model.truth_rows[answered]]
        model.pred_country = country_of(model.pred_lat[answered], model.pred_lon[answered])
        confusions[model.name] = country_confusions(true_country, model.pred_country)
    return confusions
