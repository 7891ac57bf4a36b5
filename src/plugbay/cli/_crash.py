"""An unexpected error in plugbay itself, on the lean ``plugbay run``: one line that says
it is plugbay's bug, where its full traceback was written, and what to do with it.

A user's bad input or a plugin's failure is a :class:`~plugbay.PlugbayError`, printed as
one paragraph where it happens; what reaches here is a bug, and a traceback on the
terminal helps the person who reports it less than a file they can attach.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback

__all__ = ["EXIT_INTERNAL", "report_internal_error"]

#: the exit status of an internal error (``EX_SOFTWARE`` of ``sysexits.h``)
EXIT_INTERNAL = 70


def report_internal_error(exc: BaseException, command: str) -> int:
    """Write ``exc``'s traceback to a file, say so on stderr in one line; the exit code."""
    from plugbay import __version__

    text = (
        f"plugbay {__version__}, Python {sys.version.split()[0]}, {sys.platform}\n"
        f"command: {command}\n\n" + "".join(traceback.format_exception(exc))
    )
    where: str
    try:
        fd, where = tempfile.mkstemp(prefix="plugbay-internal-error-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:  # nowhere to write it: the traceback itself, below the line
        where = ""
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    if where:
        print(
            f"plugbay: internal error ({summary}). This is a bug in plugbay, not in your "
            f"plugins or options; the full traceback is in {where}. Please report it "
            "with that file attached.",
            file=sys.stderr,
        )
    else:
        print(
            f"plugbay: internal error ({summary}). This is a bug in plugbay; please report "
            "it with the traceback below.",
            file=sys.stderr,
        )
        print(text, file=sys.stderr)
    return EXIT_INTERNAL
