"""Lightning's chatter goes to the run's log file; trigeo's own warnings stay visible."""

from __future__ import annotations

import logging
import warnings

from trigeo.errors import TrigeoWarning
from trigeo.runtime.quiet import lightning_to_file


def test_lightning_records_and_foreign_warnings_go_to_the_file(tmp_path, capsys):
    log = tmp_path / "logs" / "run.log"
    lightning = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    handlers = list(logging.getLogger("lightning.pytorch").handlers)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with lightning_to_file(log):
            lightning.info("GPU available: False, used: False")
            lightning.info("litlogger: try our hosted experiment tracking")
            warnings.warn("a third-party deprecation", DeprecationWarning, stacklevel=1)
    text = log.read_text()
    assert "GPU available: False" in text
    assert "a third-party deprecation" in text
    assert "litlogger" not in text  # the advert is dropped everywhere
    captured = capsys.readouterr()
    assert "GPU available" not in captured.err + captured.out
    # Leaving the block restores Lightning's own handlers.
    assert logging.getLogger("lightning.pytorch").handlers == handlers


def test_trigeo_warnings_pass_through_to_the_console(tmp_path):
    # The previous warnings display (the console, or here pytest's recorder) gets
    # trigeo's warnings; third-party ones are kept in the file only.
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with lightning_to_file(tmp_path / "run.log"):
            warnings.warn("study-sized run from random weights", TrigeoWarning, stacklevel=1)
            warnings.warn("numpy internals changed", RuntimeWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["study-sized run from random weights"]
    text = (tmp_path / "run.log").read_text()
    assert "numpy internals changed" in text and "study-sized" not in text
