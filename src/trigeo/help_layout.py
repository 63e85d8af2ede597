"""A help layout that reads at 80 columns: option names on the left, help on the right.

Typer's rich help gives every option panel six columns (required mark, long
name, short name, negative flag, type, help). At 80 columns the names and a
``<str>``/``<bool>`` type column take 60 characters, so each option's help
wraps at about 17. Here a panel has two columns:

* the names, with a flag pair written ``--progress/--no-progress``, a short
  name after its long one, a ``*`` for required options, and the type only
  where it tells the reader something (a choice, a number range, a path);
* the help, which keeps at least 40 characters a line at 80 columns.

Typer has no public hook for the table's layout, so :func:`install` replaces
its panel printer (``typer.rich_utils._print_options_panel``; typer is pinned
in ``pyproject.toml``, and ``tests/test_cli_help.py`` checks the result).
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["NAME_COLUMN_MAX", "install", "option_label"]

#: The widest the names column gets; longer names wrap inside it.
NAME_COLUMN_MAX = 28
#: Types that say nothing a reader needs: the option's name and help already do.
_SILENT_TYPES = {"text", "boolean", "str", "bool", ""}


def option_label(param: Any, ctx: Any) -> str:
    """The names cell of one option or argument, as plain text."""
    is_argument = getattr(param, "param_type_name", "") == "argument"
    if is_argument:
        name = getattr(param, "display_name_raw", None) or param.name
        if param.nargs != 1:
            name += "..."
        return name
    longs = [o for o in param.opts if o.startswith("--")]
    shorts = [o for o in param.opts if not o.startswith("--")]
    label = ", ".join(longs + shorts)
    negatives = [o for o in param.secondary_opts if o.startswith("--")]
    if negatives:
        label += "/" + ",".join(negatives)
    kind = _type_label(param, ctx)
    if kind and not getattr(param, "is_flag", False):
        label += f" {kind}"
    return label


#: Typer's type names, shortened to the usual metavars.
_METAVARS = {"int": "N", "int range": "N", "float": "X", "float range": "X", "path": "PATH",
             "dir": "DIR", "file": "FILE", "datetime": "TIME"}  # fmt: skip


def _type_label(param: Any, ctx: Any) -> str:
    if getattr(param, "metavar", None):
        return str(param.metavar)
    shown = param.display_type_rich(ctx=ctx) if hasattr(param, "display_type_rich") else None
    shown = (shown or "").strip()
    bare = shown.strip("<>").lower()
    if bare in _SILENT_TYPES:
        return ""
    if bare in _METAVARS:
        return _METAVARS[bare]
    # Choices read as {a|b|c}; the names column folds them when they are long.
    return "{" + shown.strip("<>") + "}" if "|" in shown else shown.upper().strip("<>")


def _print_options_panel(
    *, name: str, params: list[Any], ctx: Any, markup_mode: Any, console: Any
) -> None:
    from typer import rich_utils

    if not params:
        return
    table = Table(
        highlight=False, show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1)
    )
    table.add_column(
        no_wrap=False, overflow="fold", max_width=NAME_COLUMN_MAX, style=rich_utils.STYLE_OPTION
    )
    table.add_column(ratio=1)
    for param in params:
        label = Text()
        if param.required:
            label.append("* ", style=rich_utils.STYLE_REQUIRED_SHORT)
        label.append(option_label(param, ctx))
        help_text = rich_utils._get_parameter_help(param=param, ctx=ctx, markup_mode=markup_mode)
        table.add_row(label, help_text)
    console.print(
        Panel(
            table,
            border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER,
            title=name,
            title_align=rich_utils.ALIGN_OPTIONS_PANEL,
            box=box.ROUNDED,
        )
    )


def install() -> None:
    """Use this layout for every ``trigeo`` help page (idempotent)."""
    from typer import rich_utils

    rich_utils._print_options_panel = _print_options_panel
