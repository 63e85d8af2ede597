"""Whether a finding's verdict survives another run (another seed) of the same size.

A demo run holds 4,800 scored photos of 1,500 users; at that size a verdict
near the line can flip with the seed of the world or of training.
:func:`compare_runs` sets this run's findings beside another run's (read back
from its ``report.json`` by :func:`load_findings`) and says, per finding,
whether the verdicts agree; where they disagree the finding is "not robust at
this size".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from trigeo.demo.claims import VERDICTS, Finding
from trigeo.errors import ArtifactError

__all__ = ["NOT_ROBUST", "RunComparison", "compare_runs", "load_findings"]

#: What a finding whose verdict differs between two runs is called.
NOT_ROBUST = "not robust at this size"


@dataclass(frozen=True)
class RunComparison:
    """One finding of this run beside the same finding of another run.

    Attributes
    ----------
    key : str
        The finding (``time_helps``).
    this_verdict, other_verdict : str
        The two verdicts; ``other_verdict`` is ``""`` when the other run lacks the finding.
    other_label : str
        The other run, in words (``seed 8``).
    agrees : bool or None
        Whether the verdicts agree; None when either run did not judge the
        finding ("not run", or absent), so there is nothing to compare.
    text : str
        The comparison in words, for the report.
    """

    key: str
    this_verdict: str
    other_verdict: str
    other_label: str
    agrees: bool | None
    text: str


def compare_runs(
    this: Sequence[Finding], other: Sequence[Finding], other_label: str
) -> list[RunComparison]:
    """Set each finding of this run beside the other run's verdict.

    Parameters
    ----------
    this
        This run's findings, in the report's order.
    other
        Another run's findings (matched by ``key``; order does not matter).
    other_label
        The other run in words (``seed 8``, a path), used in every ``text``.

    Returns
    -------
    list of RunComparison
        One per finding of ``this``, in its order.

    Raises
    ------
    ValueError
        When a run has two findings with one key, or a finding without a key.
    """
    theirs = _by_key(other, other_label)
    _by_key(this, "this run")
    out = []
    for mine in this:
        found = theirs.get(mine.key)
        if found is None:
            text = f"{other_label}: no such finding"
            out.append(RunComparison(mine.key, mine.verdict, "", other_label, None, text))
            continue
        verdict = found.verdict
        if "not run" in (mine.verdict, verdict):
            where = "here" if mine.verdict == "not run" else f"in {other_label}"
            where = "in both" if mine.verdict == verdict else where
            agrees, text = None, f"{other_label}: {verdict}; not compared (not run {where})"
        elif verdict == mine.verdict:
            agrees, text = True, f"{other_label}: {verdict} too"
        else:
            # A verdict that flips between two runs of one size says nothing about the claim.
            agrees, text = False, f"{other_label}: {verdict}; {NOT_ROBUST}"
        out.append(RunComparison(mine.key, mine.verdict, verdict, other_label, agrees, text))
    return out


def _by_key(findings: Sequence[Finding], label: str) -> dict[str, Finding]:
    out: dict[str, Finding] = {}
    for finding in findings:
        if not finding.key:
            raise ValueError(f"{label}: a finding without a key ({finding.claim!r})")
        if finding.key in out:
            raise ValueError(f"{label}: two findings with the key {finding.key!r}")
        out[finding.key] = finding
    return out


def load_findings(path: str | Path) -> list[Finding]:
    """The findings of a demo report's ``report.json`` (or of the directory holding one).

    Fields a newer :class:`~trigeo.demo.claims.Finding` added (``unit``) take
    their defaults when an older report.json lacks them; fields this version
    does not know are ignored.

    Raises
    ------
    ArtifactError
        When the file is missing, not JSON, has no ``findings`` list, or a
        finding lacks a field it must have or has an unknown verdict.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        raw = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such demo report (report.json)") from None
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from None
    items = raw.get("findings") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise ArtifactError(f"{path}: no 'findings' list (is it a demo report.json?)")
    known = {f.name for f in fields(Finding)}
    needed = ("claim", "numbers", "p_value", "verdict", "why", "key")
    out = []
    for i, item in enumerate(items):
        lacking = [f for f in needed if not isinstance(item, dict) or f not in item]
        if lacking:
            raise ArtifactError(f"{path}: findings[{i}] lacks {lacking}")
        if item["verdict"] not in VERDICTS:
            raise ArtifactError(f"{path}: findings[{i}] has verdict {item['verdict']!r}")
        out.append(Finding(**{k: v for k, v in item.items() if k in known}))
    return out
