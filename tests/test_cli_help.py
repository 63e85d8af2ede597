"""The command grammar: every option has help, one name means one thing, docs/cli.md is current,
and help reads at 80 columns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.clidocs import command_tree, option_type, render_cli_md
from trigeo.options import CANONICAL, MADE_HERE, made_here

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _options(command):
    return [
        p
        for p in command.params
        if p.param_type_name == "option" and not p.hidden and "--help" not in p.opts
    ]


def _primary(option) -> str:
    return next((name for name in option.opts if name.startswith("--")), option.opts[0])


def _uses():
    uses: dict[str, list[tuple[str, object]]] = {}
    for path, command in command_tree():
        for option in _options(command):
            uses.setdefault(_primary(option), []).append((path, option))
    return uses


def test_the_walk_reaches_every_command():
    commands = [path for path, _ in command_tree()]
    # A walk that saw nothing would pass every check below vacuously.
    assert len(commands) >= 30 and {"predict", "mesh build", "data csv", "serve"} <= set(commands)
    assert sum(len(v) for v in _uses().values()) > 200


def test_every_option_of_every_command_has_help():
    missing = [
        f"trigeo {path} {_primary(option)}"
        for path, command in command_tree()
        for option in _options(command)
        if not (option.help or "").strip()
    ]
    assert not missing, "options without help:\n" + "\n".join(missing)


def test_a_name_used_by_two_commands_is_in_the_grammar_with_one_type():
    problems = []
    for name, uses in _uses().items():
        commands = sorted({path for path, _ in uses})
        types = {option_type(option) for _, option in uses}
        if len(commands) > 1 and name not in CANONICAL:
            problems.append(f"{name} ({', '.join(commands)}) is not in options.CANONICAL")
        if len(types) > 1:
            problems.append(f"{name} has {len(types)} types: {sorted(t.__name__ for t in types)}")
        if name in CANONICAL and types != {CANONICAL[name].type}:
            problems.append(f"{name} is {types}, the grammar says {CANONICAL[name].type}")
    assert not problems, "\n".join(problems)


def test_help_names_each_value_as_a_reader_would_not_as_a_python_type():
    from trigeo.help_layout import option_label

    runner = CliRunner()
    odd = []
    for path, command in command_tree():
        with command.make_context(f"trigeo {path}", ["--help"], resilient_parsing=True) as ctx:
            for option in _options(command):
                label = option_label(option, ctx)
                if re.search(r"LIST|\[|TEXT|INTEGER|FLOAT|BOOLEAN", label):
                    odd.append(f"trigeo {path}: {label}")
    assert not odd, "\n".join(odd)
    help_text = runner.invoke(app, ["serve", "--help"], terminal_width=80).output
    assert "--allowed-host NAME" in help_text


def test_shared_options_come_from_the_registry():
    # One definition: a command that spells `--split` or `--workers` itself can give it
    # another meaning (as `data csv --split` once assigned a split instead of filtering).
    homemade = [
        f"trigeo {path} {name}"
        for name, uses in _uses().items()
        if name in MADE_HERE
        for path, option in uses
        if not made_here(option.type_descriptor.parameter_info)
    ]
    assert not homemade, "define these through trigeo.options:\n" + "\n".join(homemade)


def test_the_registry_check_catches_a_homemade_option():
    import typer

    made = typer.Option("--split", help="Split.")
    assert not made_here(made)
    from trigeo import options

    assert made_here(options.split())


def test_docs_cli_md_is_current():
    assert DOCS.read_text("utf-8") == render_cli_md(), (
        "docs/cli.md is stale: run `python -m trigeo.clidocs docs/cli.md`"
    )


@pytest.mark.parametrize("command", ["predict", "evaluate", "train m1", "mesh build", "serve"])
def test_help_keeps_forty_characters_a_line_at_80_columns(command):
    result = CliRunner().invoke(
        app, [*command.split(), "--help"], terminal_width=80, env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    # Rows of the options panel: "│ names  help │". The help column starts at the same
    # place in every row; it must leave at least 40 characters before the border.
    rows = [line for line in lines if line.startswith("│ --") or line.startswith("│ * --")]
    assert rows
    starts = set()
    for line in rows:
        match = re.match(r"│ (\*? ?--\S+(?: \S+)?)\s{2,}(\S)", line)
        if match:
            starts.add(match.start(2))
    assert starts, rows[:3]
    help_width = 80 - 2 - max(starts)
    assert help_width >= 40, f"help column {help_width} wide"
    assert "<bool>" not in result.output and "<str>" not in result.output
