"""`trigeo demo --quick` end to end: every stage runs and the report's findings are complete.

The slowest test of the suite (about two minutes on two cores): it is the demo a new user
runs, shrunk, and the only test that drives every stage through the real CLI in order.
"""

from __future__ import annotations

import html as html_text
import json

from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.demo import ROLES
from trigeo.demo.findings import VERDICTS


def test_quick_demo_runs_every_stage_and_writes_every_finding(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = out / "report"
    record = json.loads((report / "report.json").read_text())
    findings = record["findings"]
    assert len(findings) == 8
    assert all(f["verdict"] in VERDICTS and f["verdict"] != "not run" for f in findings)
    assert all(f["numbers"] and f["why"] for f in findings)
    markdown = (report / "report.md").read_text()
    # Claims are HTML-escaped in the page (an apostrophe is &#x27;): compare the text.
    html = html_text.unescape((report / "report.html").read_text())
    # Findings first: the findings table comes before any other table.
    assert markdown.index("| claim") < markdown.index("Best possible")
    for finding in findings:
        assert finding["claim"] in markdown and finding["claim"] in html
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    names = {m["model"] for m in metrics["models"]}
    assert set(ROLES.values()) <= names
    # Every stage ran (21: every head at both label points) and is listed with command and time.
    assert len(record["stages"]) == 21
    assert all(s["status"] == "ran" and s["seconds"] > 0 for s in record["stages"])
    assert all(s["command"].startswith("trigeo ") for s in record["stages"])
    for figure in ("longitude", "coarse", "fine", "s2"):
        assert any(figure in p.name for p in (report / "figures").glob("*.png")), figure
    # A second run reuses every stage.
    again = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert again.exit_code == 0, again.output
    record = json.loads((report / "report.json").read_text())
    assert all(s["status"] == "reused" for s in record["stages"])
