"""Evaluation stays light: no torch, and the CLI module defers heavy imports."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_evaluate_imports_without_torch():
    modules = _modules_after(
        "import trigeo.evaluate, trigeo.evaluate.report, trigeo.evaluate.run, "
        "trigeo.evaluate.console"
    )
    assert "torch" not in modules and "lightning" not in modules


def test_cli_module_defers_matplotlib_and_pandas():
    modules = _modules_after("import trigeo.evaluate.cli")
    assert "matplotlib" not in modules and "pandas" not in modules and "torch" not in modules


def test_lazy_exports_and_old_core_names_resolve():
    """Every lazy export loads, and the names that lived in ``core`` before the split still do."""
    import trigeo.evaluate as ev
    from trigeo.evaluate import core, oracle, results, truth

    assert all(getattr(ev, name) is not None for name in ev.__all__)
    assert core.Truth is truth.Truth is ev.Truth
    assert core.EvaluationConfig is results.EvaluationConfig is ev.EvaluationConfig
    assert core.Evaluation is results.Evaluation and core.ModelResult is results.ModelResult
    assert core.oracle_rows is oracle.oracle_rows is ev.oracle_rows
