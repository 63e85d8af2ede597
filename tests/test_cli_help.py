"""Every option of every command says what it is for, and shared options read the same."""

from __future__ import annotations

import typer

from trigeo.cli import app


def _commands(command, path: tuple[str, ...] = ()):
    # typer ships its own click, so groups and options are recognised by what they hold.
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, (*path, name))


def _options(command):
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden]


def test_every_option_of_every_command_has_help():
    commands = list(_commands(typer.main.get_command(app)))
    options = [(path, opt) for path, command in commands for opt in _options(command)]
    # The walk must reach the real commands (a walk that saw nothing would pass vacuously).
    assert len(commands) > 30 and len(options) > 200
    missing = [
        f"trigeo {' '.join(path)} {'/'.join(opt.opts)}"
        for path, opt in options
        if not (opt.help or "").strip() and "--help" not in opt.opts
    ]
    assert not missing, "options without help:\n" + "\n".join(missing)


def test_shared_inference_options_read_the_same_everywhere():
    helps: dict[str, dict[str, str]] = {}
    for path, command in _commands(typer.main.get_command(app)):
        for opt in _options(command):
            if opt.opts[0] in ("--num-workers", "--max-unreadable", "--accelerator"):
                helps.setdefault(opt.opts[0], {})[" ".join(path)] = opt.help or ""
    assert {"predict", "index build", "scenes", "train calibrate"} <= set(helps["--num-workers"])
    # One wording; training adds where its default comes from.
    stems = {h.split(" (0: in the main one")[0] for h in helps["--num-workers"].values()}
    assert stems == {"Processes that read and decode images beside the model"}
    assert len(set(helps["--max-unreadable"].values())) == 1
