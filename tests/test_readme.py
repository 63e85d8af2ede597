"""The README cannot drift: every ``trigeo`` line in it names a real command and real options,
and its first-steps block runs, as pasted, on a small synthetic world."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from trigeo.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
#: A block preceded by this comment is run by the test, as one bash script in a fresh folder.
RUN_MARK = "<!-- readme-test: run -->"


def _blocks(text: str) -> list[tuple[bool, str]]:
    """``(run, code)`` of every bash block, ``run`` when the line above it is RUN_MARK."""
    found = []
    for match in re.finditer(r"(?m)^```bash\n(.*?)^```", text, re.S):
        before = text[: match.start()].rstrip().splitlines()
        found.append((bool(before) and before[-1].strip() == RUN_MARK, match.group(1)))
    return found


def _commands(code: str) -> list[list[str]]:
    """The ``trigeo`` command lines of a block, continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    lines = []
    for line in joined.splitlines():
        line = line.split(" # ")[0].strip()
        if line.startswith("trigeo "):
            lines.append(shlex.split(line, comments=True))
    return lines


def _resolve(words: list[str]):
    """The click command a ``trigeo ...`` line runs, and the words after its name."""
    command = typer.main.get_command(app)
    rest = words[1:]
    while getattr(command, "commands", None) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def test_every_trigeo_line_in_the_readme_names_real_commands_and_options():
    lines = [cmd for _, code in _blocks(README.read_text("utf-8")) for cmd in _commands(code)]
    assert len(lines) > 30  # the README shows the pipeline; a parser that saw none proves nothing
    problems = []
    for words in lines:
        command, rest = _resolve(words)
        if rest == ["--help"]:
            continue
        if getattr(command, "commands", None):
            problems.append(f"{' '.join(words)}: no command {rest[:1]}")
            continue
        by_name = {
            n: p for p in command.params for n in (*p.opts, *getattr(p, "secondary_opts", []))
        }
        takes_arguments = any(p.param_type_name == "argument" for p in command.params)
        words_left = iter(rest)
        for word in words_left:
            if word == "..." or "<" in word:
                problems.append(f"{' '.join(words)}: placeholder {word!r} would not run as pasted")
            elif word.startswith("-") and not re.fullmatch(r"-\d.*", word):
                param = by_name.get(word.split("=")[0])
                if param is None:
                    problems.append(f"{' '.join(words)}: {word} is not an option here")
                elif not param.is_flag and "=" not in word:
                    value = next(words_left, "")  # the option's value
                    if value == "...":
                        problems.append(f"{' '.join(words)}: placeholder {value!r} would not run")
            elif not takes_arguments:
                problems.append(f"{' '.join(words)}: {word!r} but the command takes no argument")
    assert not problems, "\n".join(problems)


def test_the_readme_says_how_to_reach_trigeo_after_make():
    text = README.read_text("utf-8")
    assert "source .venv/bin/activate" in text


@pytest.mark.slow
def test_the_first_steps_block_runs_as_pasted(tmp_path):
    runs = [code for run, code in _blocks(README.read_text("utf-8")) if run]
    assert len(runs) == 1, "the README marks one first-steps block to run"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "80",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", runs[0]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    # What the block says it makes, it made.
    for made in ("world/table.parquet", "coarse.npz", "m1/model.json", "val.parquet",
                 "report/report.html", "index/index.json"):  # fmt: skip
        assert (tmp_path / made).exists(), made
