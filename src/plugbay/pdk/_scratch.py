"""A directory to write a whole result into before it is renamed into place."""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["scratch_beside"]


def scratch_beside(parent: Path, prefix: str) -> Path:
    """An empty directory in ``parent`` (the same filesystem, so a rename puts it in
    place at once), with the mode a ``mkdir`` there would have. ``mkdtemp`` makes it
    0700 whatever the umask, and the renamed result then was: a plugin that only its
    owner could read, unlike every other directory the user makes."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    scratch.chmod(0o777 & ~_umask())
    return scratch


def _umask() -> int:
    """The process's umask, read without setting it (``os.umask`` would change it for a
    moment under every other thread of a running host)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
