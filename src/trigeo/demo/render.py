"""report.md and report.html of the demo's study report, from one :class:`Page`.

Both documents show the same pieces in the same order (findings, tables,
figures, stages); the study's numbers are grey in HTML and ``(study 38.7)`` in
markdown. The HTML is plain HTML and CSS with no script and no external
resource; figures are referenced relatively (``figures/x.png``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trigeo.demo.findings import Finding
from trigeo.demo.robustness import RunComparison

__all__ = ["Cell", "Page", "Table", "render_html", "render_markdown"]

#: A table cell: plain text, or (this run's value, the study's value or None).
Cell = str | tuple[str, str | None]
TITLE = "trigeo demo: the study, reproduced on a synthetic world"


@dataclass
class Table:
    """One report table; cells may carry the study's number beside this run's."""

    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""


@dataclass
class Page:
    """Everything both documents show."""

    head: list[str]
    findings: list[Finding]
    tables: list[Table]
    #: (file name under figures/, caption)
    figures: list[tuple[str, str]]
    notes: list[str]
    stages: Sequence[dict[str, Any]]
    evaluation_link: str
    #: Another run's verdict per finding (same order as ``findings``); empty: no other run.
    robustness: list[RunComparison] = field(default_factory=list)

    def other_run(self, finding: Finding) -> str:
        """The other run's verdict of a finding, in words ("" when there is none)."""
        return next((c.text for c in self.robustness if c.key == finding.key), "")

    def stage_rows(self) -> list[list[str]]:
        return [
            [str(i), s["name"], s["command"], duration(float(s["seconds"])), s["status"]]
            for i, s in enumerate(self.stages, 1)
        ]

    def stage_total(self) -> str:
        total = sum(float(s["seconds"]) for s in self.stages)
        ran = sum(s["status"] == "ran" for s in self.stages)
        return (
            f"Total {duration(total)} over {len(self.stages)} stages ({ran} ran, "
            f"{len(self.stages) - ran} reused)."
        )


def duration(seconds: float) -> str:
    """``12.3 s``, or minutes from two minutes on."""
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:,.0f} s)"


def _p(finding: Finding) -> str:
    """The p-value and what its test resamples: ``0.003 (per user)``."""
    p = "n/a" if finding.p_value is None else f"{finding.p_value:.2g}"
    return f"{p} (per {finding.unit})" if finding.unit else p


def _md(cell: Cell) -> str:
    if isinstance(cell, tuple):
        return cell[0] if cell[1] is None else f"{cell[0]} (study {cell[1]})"
    # A pipe would end the markdown cell early.
    return cell.replace("|", "\\|")


def render_markdown(page: Page) -> str:
    """report.md."""
    out = [f"# {TITLE}", "", *(f"- {line}" for line in page.head), "", "## Findings", ""]
    other = ["other run"] if page.robustness else []
    out += ["| " + " | ".join(["claim", "this run", "p", "verdict", *other]) + " |"]
    out.append("|" + "---|" * (4 + len(other)))
    for f in page.findings:
        numbers = f"{f.numbers} (study: {f.study})" if f.study else f.numbers
        extra = f" {_md(page.other_run(f))} |" if other else ""
        out.append(
            f"| {_md(f.claim)} | {_md(numbers)} | {_p(f)} | **{f.verdict}**: {_md(f.why)} |{extra}"
        )
    for table in page.tables:
        out += ["", f"## {table.title}", "", "| " + " | ".join(table.columns) + " |"]
        out.append("|" + "---|" * len(table.columns))
        out += ["| " + " | ".join(map(_md, row)) + " |" for row in table.rows]
        out += ["", f"_{table.note}_"] if table.note else []
    out += ["", "## Figures", ""]
    out += [f"![{cap}](figures/{name})\n\n_{cap}_\n" for name, cap in page.figures]
    out += [f"- {note}" for note in page.notes]
    out += ["", "## How this was made", "", "| # | stage | command | wall time | status |"]
    out.append("|---|---|---|---|---|")
    for number, name, command, wall, status in page.stage_rows():
        out.append(f"| {number} | {_md(name)} | `{_md(command)}` | {wall} | {status} |")
    link = page.evaluation_link
    out += ["", page.stage_total(), "", f"Full evaluation report: [{link}]({link})", ""]
    return "\n".join(out)


_BADGE = {"reproduced": "ok", "not reproduced": "bad", "not run": "na"}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;color:#222;padding:0 1em;line-height:1.4}
table{border-collapse:collapse;margin:0.5em 0 0.3em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f0f3f7;text-align:left}td:first-child{text-align:left}
td.p{white-space:nowrap}
td.text{text-align:left;max-width:34em}.study{color:#999;font-size:0.85em;margin-left:0.4em}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-size:0.85em;
white-space:nowrap}.ok{background:#2e7d32}.bad{background:#c62828}.na{background:#888}
.why{color:#555;font-size:0.9em;margin-top:0.3em}
.note{color:#555;font-size:0.8em;margin-bottom:1.5em}
figure{margin:1em 1% 1em 0;display:inline-block;width:48%;vertical-align:top}
figcaption{color:#555;font-size:0.85em}img{max-width:100%}code{font-size:0.85em}
"""


def _td(cell: Cell) -> str:
    if isinstance(cell, tuple):
        study = "" if cell[1] is None else f'<span class="study">{html.escape(cell[1])}</span>'
        return f"<td>{html.escape(cell[0])}{study}</td>"
    # Words read left to right; numbers (and counts such as "331 (149 outside)") align right.
    numeric = cell[:1].isdigit() or cell[:1] in "-+—"
    css = "" if numeric else ' class="text"'
    return f"<td{css}>{html.escape(cell)}</td>"


def render_html(page: Page) -> str:
    """report.html: plain HTML and CSS, figures referenced as figures/x.png."""
    esc = html.escape
    out = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">']
    out.append(f"<title>{esc(TITLE)}</title><style>{_CSS}</style></head><body>")
    out.append(f"<h1>{esc(TITLE)}</h1><ul>")
    out += [f"<li>{esc(line)}</li>" for line in page.head]
    out.append("</ul><h2>Findings</h2><table><thead><tr><th>claim</th><th>this run</th>")
    other = "<th>other run</th>" if page.robustness else ""
    out.append(f"<th>p</th><th>verdict</th>{other}</tr></thead><tbody>")
    for f in page.findings:
        study = f'<br><span class="study">study: {esc(f.study)}</span>' if f.study else ""
        extra = f'<td class="text">{esc(page.other_run(f))}</td>' if other else ""
        out.append(
            f'<tr><td class="text">{esc(f.claim)}</td><td class="text">{esc(f.numbers)}{study}'
            f'</td><td class="p">{esc(_p(f))}</td><td class="text"><span class="badge '
            f'{_BADGE[f.verdict]}">{esc(f.verdict)}</span><div class="why">{esc(f.why)}</div>'
            f"</td>{extra}</tr>"
        )
    out.append("</tbody></table>")
    for table in page.tables:
        out.append(f"<h2>{esc(table.title)}</h2><table><thead><tr>")
        out += [f"<th>{esc(c)}</th>" for c in table.columns]
        out.append("</tr></thead><tbody>")
        out += ["<tr>" + "".join(map(_td, row)) + "</tr>" for row in table.rows]
        out.append(f'</tbody></table><div class="note">{esc(table.note)}</div>')
    out.append("<h2>Figures</h2>")
    out += [
        f'<figure><img src="figures/{esc(name)}" alt="{esc(cap)}">'
        f"<figcaption>{esc(cap)}</figcaption></figure>"
        for name, cap in page.figures
    ]
    out += [f'<p class="note">{esc(note)}</p>' for note in page.notes]
    out.append("<h2>How this was made</h2><table><thead><tr><th>#</th><th>stage</th>")
    out.append("<th>command</th><th>wall time</th><th>status</th></tr></thead><tbody>")
    for number, name, command, wall, status in page.stage_rows():
        out.append(
            f'<tr><td>{number}</td><td class="text">{esc(name)}</td><td class="text"><code>'
            f"{esc(command)}"
            f"</code></td><td>{wall}</td><td>{status}</td></tr>"
        )
    link = esc(page.evaluation_link)
    out.append(f"</tbody></table><p>{esc(page.stage_total())}</p>")
    out.append(f'<p>Full evaluation report: <a href="{link}">{link}</a></p></body></html>')
    return "\n".join(out)
