"""The ``plugbay`` command's entry point: ``plugbay run`` on the lean path, every other
command (and any ``run`` the lean parser leaves to typer) through the typer app.

``plugbay run`` reads its options with :mod:`plugbay.cli._run_args` and goes straight
to :mod:`plugbay.cli._serve`: no typer, click or command group is imported before its
plugins are active. Help, errors and every other command are the typer app's, as
before.
"""

from __future__ import annotations

import sys
import time

__all__ = ["main"]


def main() -> None:
    """``plugbay …``: what the console script and ``python -m plugbay.cli`` run."""
    argv = sys.argv[1:]
    if argv[:1] == ["run"]:
        started = time.perf_counter()
        from plugbay.cli._run_args import parse_run

        options = parse_run(argv[1:])
        if options is not None:
            from plugbay.runtime.startup import spawn_zygote

            # first: its boot is the longest wait on the way to the first sandboxed plugin
            early = spawn_zygote()
            from plugbay.cli._run_args import bind_of
            from plugbay.cli._serve import run_command

            try:
                code = run_command(options, bind_of(options.http), started, early)
            except KeyboardInterrupt:  # before the host's own handler: as typer exits
                code = 130
            except Exception as exc:  # a bug of plugbay's: one line, the traceback in a file
                from plugbay.cli._crash import report_internal_error

                code = report_internal_error(exc, " ".join(["plugbay", *argv]))
            sys.exit(code)
    from plugbay.cli.app import app

    app()
