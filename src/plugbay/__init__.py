"""plugbay: a plugin host for Python applications.

What a plugin author imports (:mod:`plugbay.api`), the errors every failure is
reported with (:mod:`plugbay.api.errors`), and :class:`Host`, which an
application embeds (with :class:`HostLockedError`, what its start raises when another
host serves the same state directory). ``Host`` is imported on first use, so a plugin's worker,
which imports ``plugbay`` for the plugin API, never loads the host runtime; and
``__version__`` is read on first use (``importlib.metadata`` and the ``email``
parser it loads are some 25 ms of every worker's, and the zygote's, boot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugbay.api import *  # noqa: F403
from plugbay.api import __all__ as _api_all
from plugbay.api.errors import *  # noqa: F403
from plugbay.api.errors import __all__ as _errors_all

if TYPE_CHECKING:
    from plugbay.runtime.host import Host
    from plugbay.runtime.lifecycle import HostLockedError
    from plugbay.runtime.proxy import many

    __version__: str

__all__ = [*_api_all, *_errors_all, "Host", "HostLockedError", "__version__", "many"]


def __getattr__(name: str) -> Any:
    if name == "Host":
        from plugbay.runtime.host import Host

        return Host
    if name == "__version__":  # read when asked: importlib.metadata is some 25 ms
        import importlib.metadata

        version: str = importlib.metadata.version("plugbay")
        globals()["__version__"] = version  # read once
        return version
    if name == "HostLockedError":  # raised by Host.start: loaded with the host, not before
        from plugbay.runtime.lifecycle import HostLockedError

        return HostLockedError
    if name == "many":
        from plugbay.runtime.proxy import many

        return many
    raise AttributeError(f"module 'plugbay' has no attribute {name!r}")
