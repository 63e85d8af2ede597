"""``trigeo predict`` as one library call: any model directory -> a predictions file.

:func:`predict_model` reads the model directory's format and runs M1
(:func:`~trigeo.predict.m1.predict_m1`) or M2/M3
(:func:`~trigeo.predict.heads.predict_head`) with the same options.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trigeo.errors import InputError
from trigeo.runtime.options import InferenceOptions

__all__ = ["predict_model"]

log = logging.getLogger("trigeo.predict")


def predict_model(
    model: str | Path,
    out: str | Path,
    *,
    images: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    split: str | None = "val",
    name: str | None = None,
    top_k: int = 20,
    full_probs: bool = False,
    m1_pred: str | Path | None = None,
    m1_dir: str | Path | None = None,
    posted_at: str | None = None,
    head: str | None = None,
    label: str | None = None,
    answer: str = "top-cell",
    five_crop: bool = False,
    options: InferenceOptions | None = None,
    report: Callable[[str], None] = log.info,
) -> Any:
    """Predict with an M1, M2 or M3 model directory; returns the predictor's result.

    Parameters
    ----------
    m1_pred, m1_dir, posted_at
        M2/M3 only: M1's predictions for the same photos, the M1 directory if it
        moved, the posting time of image files.
    head, label
        M1 only: predict one head of a multi-head model; report cells at the
        other label point (``imagery`` or ``cell``).
    answer
        The rule choosing each photo's reported point from its top cells
        (``top-cell``, ``geoscore``, ``median``; :mod:`trigeo.answer`).
    five_crop, options
        How M1 runs (the model's, or an M2/M3's M1): test-time crops, and the
        inference options (default: :class:`InferenceOptions`).

    Raises
    ------
    InputError
        An option that does not apply to the model's kind.
    """
    from trigeo.models.registry import load_model_dir, model_dir_format

    if model_dir_format(model) == "trigeo-m1/1":
        given = [
            flag
            for flag, value in (
                ("--m1-pred", m1_pred),
                ("--m1", m1_dir),
                ("--posted-at", posted_at),
            )
            if value
        ]
        if given:
            raise InputError(f"{', '.join(given)} apply to M2/M3 models; {model} is an M1")
        from trigeo.predict.m1 import predict_m1

        return predict_m1(
            model,
            out,
            images=images,
            data=data,
            split=split,
            name=name,
            top_k=top_k,
            full_probs=full_probs,
            head=head,
            label=label,
            answer=answer,
            five_crop=five_crop,
            options=options,
            report=report,
        )
    from trigeo.predict.heads import predict_head

    given = [flag for flag, value in (("--head", head), ("--label", label)) if value]
    if given:
        raise InputError(f"{', '.join(given)} apply to M1 models; {model} is an M2/M3")
    if full_probs:
        raise InputError("--full-probs is for M1 models")
    return predict_head(
        load_model_dir(model),
        out,
        images=images,
        data=data,
        split=split,
        m1_pred=m1_pred,
        m1_dir=m1_dir,
        posted_at=posted_at,
        name=name,
        top_k=top_k,
        answer=answer,
        five_crop=five_crop,
        options=options,
        report=report,
    )
