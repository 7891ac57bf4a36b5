"""The host's own log of ``plugbay run``: ``<state>/host.log``.

An application that embeds a :class:`~plugbay.Host` configures logging itself, and
plugbay's loggers (``plugbay.*``) go where it says. ``plugbay run`` is that application
for an operator: without a handler here, the host's warnings and errors (a plugin that
cannot start, a bug answered with "the host's log has the traceback under request X")
went nowhere. They are written to ``host.log`` in the state directory, beside the state
they are about, and ``plugbay run``'s terminal stays the plugin table and its lines.

A plugin's own records (``plugbay.plugin.*``) are not here: the monitor keeps them,
bounded, for ``plugbay logs ID``. The file is bounded too: past :data:`MAX_BYTES` it
moves to ``host.log.1`` (the one before it is dropped) and a new one starts, so a flood
of warnings costs at most twice that on disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Final

__all__ = ["LOG_FILE", "MAX_BYTES", "attach", "detach"]

LOG_FILE: Final = "host.log"
#: the size at which the log moves to ``host.log.1`` and a new one starts
MAX_BYTES: Final = 4 << 20
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PLUGINS: Final = "plugbay.plugin."


class _HostLog(logging.FileHandler):
    """A file of the host's own records, rolled over at :data:`MAX_BYTES` (``logging``'s
    core only: ``logging.handlers`` would cost every ``plugbay run`` its import)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter(_FORMAT))
        self.addFilter(lambda record: not record.name.startswith(_PLUGINS))

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        with contextlib.suppress(OSError):  # a file it cannot move keeps growing: rare
            if self.stream is not None and self.stream.tell() >= MAX_BYTES:
                self.close()
                os.replace(self.baseFilename, self.baseFilename + ".1")


def attach(state_dir: Path) -> logging.Handler | None:
    """Write the host's warnings and errors to ``state_dir/host.log`` from now on; the
    handler (None when the directory cannot take a file: a read-only disk)."""
    path = Path(state_dir) / LOG_FILE
    if not os.access(state_dir, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return None
    handler = _HostLog(path)
    logging.getLogger("plugbay").addHandler(handler)
    return handler


def detach(handler: logging.Handler | None) -> None:
    """Stop writing the host's log (at the host's stop)."""
    if handler is not None:
        logging.getLogger("plugbay").removeHandler(handler)
        handler.close()
