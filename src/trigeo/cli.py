"""The ``trigeo`` command line: one sub-command group per stage.

Each stage's commands live in that stage's package (``trigeo/<stage>/cli.py``)
and import heavy libraries inside the command body, so ``trigeo --help`` and
``trigeo mesh ...`` start without torch.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from trigeo import __version__
from trigeo.errors import TrigeoError
from trigeo.help_layout import install as _install_help_layout

_stderr = Console(stderr=True)


class _Group(TyperGroup):
    """Root group: a ``TrigeoError`` or a stray ``EOFError`` becomes one red line on
    stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrigeoError as exc:
            # typer >= 0.20 vendors its own click, whose main loop does not recognise
            # click.ClickException; print here and exit with the documented status.
            _error(str(exc))
            raise SystemExit(2) from exc
        except EOFError as exc:
            # Click turns an EOFError into a bare "Aborted." and status 1. No command
            # reads the terminal, so it means a file ended early: numpy, pickle or a
            # decompressor reading an empty or truncated file no check caught.
            _error(_unexpected_eof(exc))
            raise SystemExit(2) from exc


def _error(message: str) -> None:
    _stderr.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)


def _unexpected_eof(exc: EOFError) -> str:
    """One line for an ``EOFError``: what ended, and where in trigeo it was read."""
    what = f"EOFError: {exc}" if str(exc) else "EOFError"
    package = Path(__file__).resolve().parent
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(package) and path != Path(__file__).resolve():
            where = f" in {path.relative_to(package.parent).as_posix()} line {frame.lineno}"
            break
    return f"unexpected end of data ({what}){where}: a file this command read is empty or truncated"


app = typer.Typer(
    cls=_Group,
    name="trigeo",
    help="Where in the world was this photo taken? Mesh, data, train, predict, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module, attribute, command name, kind): "group" adds a sub-Typer, "command" a function.
_SUBCOMMANDS: list[tuple[str, str, str, str]] = [
    ("trigeo.mesh.cli", "app", "mesh", "group"),
    ("trigeo.evaluate.cli", "evaluate", "evaluate", "command"),
    ("trigeo.data.cli", "app", "data", "group"),
    ("trigeo.train.cli", "app", "train", "group"),
    ("trigeo.predict.cli", "predict", "predict", "command"),
    ("trigeo.scenes.cli", "scenes", "scenes", "command"),
    ("trigeo.demo", "demo", "demo", "command"),
    ("trigeo.retrieve.cli", "index_app", "index", "group"),
    ("trigeo.retrieve.cli", "retrieve_app", "retrieve", "group"),
    ("trigeo.serve.cli", "serve", "serve", "command"),
]


def _register() -> None:
    for module_name, attribute, name, kind in _SUBCOMMANDS:
        target = getattr(importlib.import_module(module_name), attribute)
        if kind == "group":
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


@app.command()
def version() -> None:
    """Print the trigeo version."""
    typer.echo(__version__)


_register()
_install_help_layout()


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
