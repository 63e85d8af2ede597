"""Keep Lightning's chatter out of the console and in the run's log file.

A trigeo command shows its own progress and results. Lightning prints, for
every ``Trainer``, banners ("GPU available: False ...", "TPU available ..."),
model summaries, an advert for its hosted logger and assorted warnings from
third-party code. Inside :func:`lightning_to_file` those records go to a log
file next to the run's artifact instead; warnings raised by trigeo itself
still reach the console.

Importing this module also installs a filter that drops the hosted-logger
advert everywhere (trigeo runs offline).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["DropCloudAdvert", "lightning_to_file", "progress_bar"]

# Lightning attaches its own console handlers to these and stops propagation. trigeo's
# own log records during a run (one line per skipped image, say) belong in the file
# too: the console gets the stage's one-line summaries through ``report`` instead.
_LIGHTNING_LOGGERS = (
    "lightning.pytorch",
    "lightning.fabric",
    "lightning",
    "pytorch_lightning",
    "trigeo",
)


class DropCloudAdvert(logging.Filter):
    """Drop Lightning's hosted-logger advert; keep every other message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(DropCloudAdvert())


def _is_trigeo_warning(category: type[Warning], filename: str) -> bool:
    module = getattr(category, "__module__", "") or ""
    return module.startswith("trigeo") or "/trigeo/" in filename.replace("\\", "/")


@contextlib.contextmanager
def lightning_to_file(log_file: str | Path | None) -> Iterator[Path | None]:
    """Route Lightning's log records and third-party warnings to ``log_file``.

    Parameters
    ----------
    log_file
        Appended to (its folder is created). ``None`` discards them instead,
        for runs with no artifact folder.

    Yields
    ------
    Path or None
        The log file.
    """
    path = Path(log_file) if log_file is not None else None
    handler: logging.Handler
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    else:
        handler = logging.NullHandler()
    handler.addFilter(DropCloudAdvert())
    saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = []
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.propagate, logger.level))
        logger.handlers = [handler]
        logger.propagate = False
        # The file is the full record of the run: INFO included.
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
    show = warnings.showwarning

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if _is_trigeo_warning(category, filename):
            show(message, category, filename, lineno, file, line)
            return
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        handler.handle(
            logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, text, None, None)
        )

    warnings.showwarning = showwarning
    try:
        yield path
    finally:
        warnings.showwarning = show
        for logger, handlers, propagate, level in saved:
            logger.handlers = handlers
            logger.propagate = propagate
            logger.setLevel(level)
        handler.close()


def progress_bar(enabled: bool) -> list[Any]:
    """Lightning's rich progress bar without the logger's version number (``v_num``).

    Returns a callback list to splice into ``Trainer(callbacks=...)``; empty when
    disabled (the ``Trainer`` is then given ``enable_progress_bar=False``).
    """
    if not enabled:
        return []
    from lightning.pytorch.callbacks import RichProgressBar

    class _Bar(RichProgressBar):
        def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
            metrics = super().get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)
            return metrics

    return [_Bar()]
