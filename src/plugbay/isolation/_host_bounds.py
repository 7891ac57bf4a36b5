"""The host's bounds on one worker handle: what it hands the worker, what it reads back.

Split from ``process.py`` (one concern: ``monitor.bounds`` applied to a worker). The
manager binds a handle to its plugin's :class:`~plugbay.monitor.bounds.Budget`
(``bind``): the channel's largest frame, the records far over their bounds dropped
unread, and the rate of such drops the host reads. The worker is told the bounds it
applies itself before its plugin runs (``_bounds_for_worker``, in ``frames.Load``), and
what it sends unasked (log records, security reports) is kept within the budget here.
None of this is on the call path: ``_dispatch`` answers a call's reply before it would
look at anything here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from plugbay.isolation import frames
from plugbay.isolation.base import SecurityListener
from plugbay.isolation.identity import deliver_log, security_event
from plugbay.model.manifest import PluginManifest
from plugbay.monitor.bounds import Budget

__all__ = ["BoundedByHost"]

log = logging.getLogger("plugbay.isolation.process")


class BoundedByHost:
    """``bind`` and the bounded reading of a worker's unasked frames, for a handle whose
    plugin answers on a ``frames.Channel`` (``process.ProcessHandle``)."""

    manifest: PluginManifest
    pid: int
    on_security: SecurityListener | None
    _channel: frames.Channel | None
    #: what this plugin may make the host keep (``monitor.bounds``); set by the manager
    budget: Budget | None
    #: whether the host issued this refusal token to this plugin (isolation.refusals)
    issued: Callable[[str], bool]

    def _bounds_for_worker(self) -> dict[str, float]:
        """The bounds the worker applies itself, before anything reaches the host
        (``frames.Load.bounds``); empty: the worker's defaults."""
        return (
            {
                "log_rate": self.budget.bounds.log_records_per_second,
                "log_burst": self.budget.bounds.log_burst,
                "metric_series": self.budget.bounds.metric_series,
            }
            if self.budget is not None
            else {}
        )

    def _worker_security(self, message: frames.Security) -> None:
        """The worker's report, never the host's own event: bounded, marked as such."""
        event = security_event(message.event, self.budget)
        if event is not None and self.on_security is not None:
            try:
                self.on_security(event)
            except Exception:
                log.exception("security event handler failed")

    def bind(self, budget: Budget | None, issued: Callable[[str], bool]) -> None:
        """The host's bounds for this plugin, and its broker's word on denials it issued."""
        self.budget = budget
        self.issued = issued
        if budget is not None and self._channel is not None:
            bounds = budget.bounds
            self._channel.max_frame = bounds.frame_bytes
            # a record, report or metrics frame far over its bounds is dropped unread
            self._channel.skip_above = min(
                bounds.log_message_bytes + bounds.log_fields_bytes + 64 * 1024,
                bounds.frame_bytes,
            )
            self._channel.skip = self._oversized
            self._channel.discard_rate = bounds.discard_bytes_per_second

    #: what each frame kind may weigh before it is dropped unread (see ``bind``)
    _UNREAD = {"Log": "log_oversize", "Security": "security_oversize", "Metrics": "metric_oversize"}

    def _oversized(self, kind: str, size: int) -> bool:
        reason = self._UNREAD.get(kind)
        if reason is None or self.budget is None:
            return False
        if kind == "Metrics" and size < self.budget.bounds.metric_series * 1024:
            return False
        self.budget.drop(reason)
        return True

    def _log(self, message: frames.Log) -> None:
        """A record from the worker: the channel's plugin's log, whatever logger it names."""
        deliver_log(
            message.logger,
            message.level,
            message.message,
            message.fields,
            plugin_id=self.manifest.id,
            pid=self.pid,
            budget=self.budget,
        )
