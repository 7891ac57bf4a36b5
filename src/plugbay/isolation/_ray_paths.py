"""A Ray plugin's own error said with the host's paths (``isolation.ray``).

A worker on a node loads the node's copy of the plugin's code
(``…/<node>/code/<digest>/``), so the line it names where the plugin raised is in that
copy: a file the operator cannot open from the host (on another machine, under a
digest). The host names its own file instead, as for a plugin on this machine: in its
start's error, a failed call's (``HostPaths._failed``), a logged exception's traceback,
``plugbay profile``'s report and its samples' frames, a worker's stacks. Only on those
paths: a call that succeeds (a ``Reply``) never comes here.
"""

from __future__ import annotations

from typing import Any

from plugbay.api import CommandSpec
from plugbay.isolation import frames
from plugbay.isolation._far_end import FarHandle
from plugbay.isolation._ray_missing import missing_on_node
from plugbay.model.manifest import PluginManifest

__all__ = ["HostPaths"]


def _details_here(details: Any, there: str, here: str) -> None:
    """``raised_at``'s file and the traceback of an error's ``details``, in place."""
    if not isinstance(details, dict):
        return
    raised_at = details.get("raised_at")
    if isinstance(raised_at, dict) and str(raised_at.get("file", "")).startswith(there + "/"):
        details["raised_at"] = {**raised_at, "file": here + raised_at["file"][len(there) :]}
    if isinstance(details.get("traceback"), str):
        details["traceback"] = details["traceback"].replace(there + "/", here + "/")


class HostPaths(FarHandle):
    """A far handle whose plugin's own lines are named at the host's files (``ray.RayHandle``):
    what its worker sends that names the node's copy of the code, on the paths that carry
    it (a failure, a logged exception, a profile), never a call's ``Reply``."""

    #: its manifest as the host has it (set once it is placed: ``RayBackend.start``)
    host_manifest: PluginManifest | None
    #: the Ray node it runs on (``ray.RayHandle``)
    node: str

    def _paths(self) -> tuple[str, str] | None:
        """(the node's copy of its code, the host's plugin directory), when they differ."""
        here = self.host_manifest.path if self.host_manifest is not None else None
        there = self.manifest.path
        if here is None or there is None or here.parent == there.parent:
            return None
        return str(there.parent), str(here.parent)

    def _failed(self, message: frames.Fail) -> None:
        """A failed request (a command, a batch's call, its start): named here first."""
        paths = self._paths()
        if paths is not None:
            where = message.error.get("where")
            if isinstance(where, str) and where.startswith(paths[0] + "/"):
                message.error["where"] = paths[1] + where[len(paths[0]) :]
            _details_here(message.error.get("details"), *paths)
        missing_on_node(message.error, self.node)
        super()._failed(message)

    def _log(self, message: frames.Log) -> None:
        """A record; one of ``logger.exception`` carries its traceback (``exception``)."""
        fields = message.fields
        if fields is not None and isinstance(fields.get("exception"), str):
            paths = self._paths()
            if paths is not None:
                fields["exception"] = fields["exception"].replace(*_dirs(paths))
        super()._log(message)

    async def profile(
        self, spec: CommandSpec, params: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """``plugbay profile``'s report names the host's files."""
        out = await super().profile(spec, params, timeout)
        paths = self._paths()
        if paths is not None and isinstance(out.get("report"), str):
            out["report"] = out["report"].replace(*_dirs(paths))
        return out

    async def sample(self, seconds: float, interval: float, timeout: float) -> dict[str, Any]:
        """``plugbay profile --seconds``: its frames ([function, file, line]) name the host's."""
        out = await super().sample(seconds, interval, timeout)
        paths = self._paths()
        if paths is not None:
            there, here = _dirs(paths)
            for frame in out.get("frames", ()):
                file = frame[1] if isinstance(frame, list) and len(frame) > 1 else None
                if isinstance(file, str) and file.startswith(there):
                    frame[1] = here + file[len(there) :]
        return out

    def _stacks_here(self, text: str) -> str:
        """A worker's stacks (``RayHandle.dump_stacks``: a hung one's, in its log as it is
        killed, and ``plugbay stacks``) name the host's files."""
        paths = self._paths()
        return text if paths is None else text.replace(*_dirs(paths))


def _dirs(paths: tuple[str, str]) -> tuple[str, str]:
    return paths[0] + "/", paths[1] + "/"
