"""The warm zygotes of plugin environments, one per environment the process backend
forked a worker from (``ProcessBackend.env_zygotes``, by the environment's
site-packages).

Each imports from its environment's files. When the environment is removed (``plugbay
uninstall`` of the last version that used it, ``plugbay env gc``) its zygote is stopped
too, once the workers it forked are gone: it would otherwise run until the host stops,
holding files that are no longer there, and fork the next worker of an environment
built again at the same path from what it imported of the removed one.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugbay.isolation.process import ProcessHandle
    from plugbay.isolation.zygote import Zygote

__all__ = ["EnvironmentZygotes"]

log = logging.getLogger("plugbay.isolation.process")

#: seconds the workers of a removed environment's zygote are given to be reaped
_REAP_WAIT = 3.0


class EnvironmentZygotes:
    """What :class:`~plugbay.isolation.process.ProcessBackend` does when an environment
    goes (:meth:`~plugbay.isolation.base.Backend.forget_environment`)."""

    env_zygotes: dict[str, Zygote]
    _live: set[ProcessHandle]

    async def forget_environment(self, path: Path) -> None:
        """Stop the zygote of each environment under ``path``, after the workers it
        forked are reaped (bounded: they are stopping, no plugin version uses it)."""
        # both from the host's environment store: the same root, spelt the same way
        gone = [key for key in self.env_zygotes if Path(key).is_relative_to(path)]
        for key in gone:
            zygote = self.env_zygotes.pop(key)
            reapers = [
                h._reaper for h in list(self._live) if h._zygote is zygote and h._reaper is not None
            ]
            if reapers:
                await asyncio.wait(reapers, timeout=_REAP_WAIT)
            log.debug("stopping the zygote of the removed environment %s", path)
            await zygote.stop()
