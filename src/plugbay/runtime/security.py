"""Security events and bounds: what a plugin's sandbox denied or stopped, and what
the host refused it, told to the operator once each (logged, kept in the plugin's
history, sent to system plugins), within the plugin's bounds (``monitor.bounds``).

:class:`SecurityEvents` is part of :class:`plugbay.runtime.manager.PluginManager`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from plugbay.monitor.bounds import Budget
from plugbay.runtime.events import EventBus
from plugbay.runtime.records import ManagerSettings, PluginRecord, Roster

__all__ = ["SecurityEvents", "security_text"]

#: denials and limit hits in sandboxed workers
security_log = logging.getLogger("plugbay.security")


class SecurityEvents:
    """The manager's part that reports security events and keeps each plugin's bounds."""

    settings: ManagerSettings
    events: EventBus
    #: what each plugin may make the host keep (``monitor.bounds``), by plugin id
    budgets: dict[str, Budget]
    _records: Roster

    if TYPE_CHECKING:

        def _history(
            self,
            rec: PluginRecord,
            action: str,
            result: str,
            reason: str | None,
            details: dict[str, Any] | None,
        ) -> None: ...

    def budget_for(self, plugin_id: str) -> Budget | None:
        """The plugin's bounds as it runs (made on first use, from the policy)."""
        budget = self.budgets.get(plugin_id)
        if budget is None and plugin_id in self._records:
            budget = self.budgets[plugin_id] = Budget(
                plugin_id, self.settings.policy.bounds_for(plugin_id), _report_dropped
            )
        return budget

    def security_event(self, plugin_id: str, event: dict[str, Any]) -> None:
        """A security event the host made about a plugin (the broker's refusals)."""
        rec = self._records.get(plugin_id)
        if rec is not None:
            self._security(rec, event)

    def _security(self, rec: PluginRecord, event: dict[str, Any]) -> None:
        """A denial or a limit hit in a sandboxed worker: logged, recorded, sent to system plugins."""
        budget = self.budget_for(rec.id)
        if (
            event.get("source") == "host"
            and event.get("kind") in ("denied", "timeout")
            and budget is not None
            and not budget.security.allow()  # a flood of refusals: counted, not each kept
        ):
            budget.drop("security_rate")
            return
        kind = str(event.get("kind", "denied"))
        text = security_text(rec.id, kind, event)
        security_log.warning("%s", text)
        fields = {k: v for k, v in event.items() if k not in ("kind", "plugin")}
        self.events.emit(f"security.{kind}", plugin=rec.id, **fields)
        self._history(
            rec, f"security.{kind}", "denied" if kind == "denied" else "stopped", text, event
        )


def security_text(plugin_id: str, kind: str, event: dict[str, Any]) -> str:
    """The operator's sentence for one security event of ``kind``."""
    what = event.get("operation") or event.get("detail") or event.get("limit") or kind
    if kind == "limit":
        return f"plugin '{plugin_id}' hit its {event.get('limit')} limit: {event.get('detail')}"
    if kind == "killed":
        return f"plugin '{plugin_id}': its worker was stopped by the {event.get('layer')} ({what})"
    if kind == "timeout":
        return (
            f"plugin '{plugin_id}': {event.get('operation')} ran past its time limit "
            "and was cancelled"
        )
    text = f"plugin '{plugin_id}': the sandbox denied {what}"
    if event.get("layer") == "broker":
        text = f"plugin '{plugin_id}': the host's broker refused {what}"
    if event.get("permission"):
        text += f" (permission '{event['permission']}' not granted)"
    if event.get("source") == "worker":
        text += " [reported by its worker]"
    return text


#: a drop's reason as its report says it (any other: its name, spaced)
_REASONS = {"log_rate": "log records dropped over its rate (log-records-per-second)"}


def _report_dropped(plugin_id: str, lost: dict[str, int]) -> None:
    """Once per window: what a plugin lost to its bounds, in its own log (never whole)."""
    what = ", ".join(
        f"{n} {_REASONS.get(reason, reason.replace('_', ' '))}"
        for reason, n in sorted(lost.items())
    )
    logging.getLogger(f"plugbay.plugin.{plugin_id}").warning(
        "over its bounds: %s (see plugbay_plugin_dropped_total)",
        what,
        extra={"fields": {"dropped": lost, "source": "host"}, "plugbay_owner": plugin_id},
    )
