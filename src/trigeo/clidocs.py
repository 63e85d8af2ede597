"""Write ``docs/cli.md`` from the command line itself: the grammar and every command's options.

``python -m trigeo.clidocs docs/cli.md`` regenerates the file;
``tests/test_cli_help.py`` fails when the committed file differs from what
this module renders, so the page cannot drift from the code.
"""

from __future__ import annotations

import enum
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["command_tree", "option_type", "render_cli_md"]

_HEADER = """# The command line

Generated from the code by `python -m trigeo.clidocs docs/cli.md`; a test fails
when this page and the code differ. Every option name that more than one
command uses is in the grammar below, with one meaning and one type
(`trigeo.options.CANONICAL`). Options marked *shared* are defined once in
`trigeo/options.py` and imported by every command that takes them.

Conventions:

- `--out` is everything a command writes; `--data` is a dataset directory it
  reads; `--points` is a file of coordinates.
- `--mesh` and `--index` are always options, never positional.
- `-k/--neighbours` is a neighbour count; `--earth-radius-km` the Earth's radius.
- `--split` keeps the rows of one split; `data csv --assign-split` writes one.
- `--workers` is parallel I/O (loader processes, download or encoder
  threads); `--threads` is compute threads (torch, point location).
- `--json` prints a command's summary as JSON instead of a table.
"""


def command_tree() -> Iterator[tuple[str, Any]]:
    """``(path, click command)`` of every leaf command of ``trigeo``, in order."""
    import typer

    from trigeo.cli import app

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        children = getattr(command, "commands", None)
        if not children:
            yield " ".join(path), command
            return
        for name in children:
            yield from walk(children[name], (*path, name))

    yield from walk(typer.main.get_command(app), ())


def option_type(param: Any) -> type:
    """The value type of a Typer option: ``Optional``/``list`` unwrapped, enums as ``str``."""
    kind = param.type_descriptor.annotation
    while True:
        origin = typing.get_origin(kind)
        if origin in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        elif origin in (list, tuple):
            kind = typing.get_args(kind)[0]
        else:
            break
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return str
    return kind


def _names(param: Any) -> str:
    names = ", ".join(param.opts)
    if param.secondary_opts:
        names += " / " + ", ".join(param.secondary_opts)
    return names


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def render_cli_md() -> str:
    """The text of ``docs/cli.md``."""
    from trigeo.options import CANONICAL, MADE_HERE

    lines = [
        _HEADER,
        "## The grammar",
        "",
        "| option | meaning | type | shared |",
        "|---|---|---|---|",
    ]
    for name in sorted(CANONICAL):
        entry = CANONICAL[name]
        shared = "yes" if name in MADE_HERE else ""
        lines.append(f"| `{name}` | {_cell(entry.meaning)} | {entry.type.__name__} | {shared} |")
    lines += ["", "## Commands", ""]
    for path, command in command_tree():
        lines += [f"### `trigeo {path}`", "", _cell((command.help or "").split("\n\n")[0]), ""]
        rows = []
        for param in command.params:
            if "--help" in getattr(param, "opts", ()):
                continue
            if param.param_type_name == "argument":
                rows.append(f"| `{param.name.upper()}` (argument) | {_cell(param.help)} |")
            elif not param.hidden:
                required = " (required)" if param.required else ""
                rows.append(f"| `{_names(param)}`{required} | {_cell(param.help)} |")
        if rows:
            lines += ["| option | help |", "|---|---|", *rows, ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/cli.md")
    target.write_text(render_cli_md(), encoding="utf-8")
    print(f"wrote {target}")
