"""Console progress of the long mesh commands, on stderr (stdout stays the result, so
``--json`` output can be piped)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["StepBar", "print_note", "print_warnings", "refine_bar", "step_bar"]


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def refine_bar(regions_name: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A spinner for ``fit``'s refinement rounds; yields its ``progress`` callback.

    ``regions_name`` is the kind's plural region word (``triangles``, ``leaves``),
    which is also the key of the region count in each round's record.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]refining[/bold] round {task.fields[round]}"),
        BarColumn(),
        TextColumn(
            "{task.fields[regions]} " + regions_name + ", {task.fields[over]} over the limit"
        ),
        TimeElapsedColumn(),
        transient=True,
        console=_console(),
    ) as bar:
        task = bar.add_task("refine", total=None, round=0, regions=0, over=0)

        def report(state: dict[str, Any]) -> None:
            bar.update(
                task,
                round=state["round"],
                regions=state.get(regions_name),
                over=state["over_limit"],
            )

        yield report


class StepBar:
    """A bar of named steps: :meth:`total` sets the number, each call advances one."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task

    def total(self, steps: int) -> None:
        self._bar.update(self._task, total=steps)

    def __call__(self, step: str) -> None:
        self._bar.update(self._task, advance=1, step=step)


@contextmanager
def step_bar(description: str) -> Iterator[StepBar]:
    """A progress bar of named steps (``mesh compare``)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        transient=True,
        console=_console(),
    ) as bar:
        yield StepBar(bar, bar.add_task(description, total=None, step=""))


def print_warnings(messages: list[str]) -> None:
    """Each message as ``warning: ...`` on stderr."""
    from rich.markup import escape

    console = _console()
    for message in messages:
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(message)}", highlight=False)


def print_note(message: str | None) -> None:
    """A plain line on stderr (nothing for None)."""
    if message:
        _console().print(message, highlight=False, markup=False)
