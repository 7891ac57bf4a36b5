"""Whether a plugin has a version to roll back to, for the API's plugin rows (the
dashboard enables its rollback button only then)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from plugbay.api.errors import PlugbayError

if TYPE_CHECKING:
    from plugbay.runtime.host import Host
    from plugbay.runtime.records import PluginRecord

__all__ = ["rollback_targets", "rollback_to"]


async def rollback_to(host: Host, plugin_id: str) -> str | None:
    """The version ``POST …/rollback`` with no ``to`` would serve: the one that served
    before the current one, when the store keeps it; None when a rollback is a 409."""
    return (await rollback_targets(host, [host.plugin(plugin_id)]))[plugin_id]


async def rollback_targets(host: Host, records: Iterable[PluginRecord]) -> dict[str, str | None]:
    """:func:`rollback_to` of each record: one read of the installed versions for all
    (a list of 1,000 plugins is one query, not 1,000), the history only of the plugins
    that have another version kept."""
    records = list(records)
    targets: dict[str, str | None] = dict.fromkeys((r.id for r in records), None)
    if host.state is None or host.store is None:
        return targets
    ids = set(targets)
    with contextlib.suppress(PlugbayError):
        one = records[0].id if len(records) == 1 else None
        await host.store.settled(one)  # copies still being kept, as a rollback waits
        stored: dict[str, set[str]] = {}
        for pid, version, _ in host.state.installed(one):
            if pid in ids:
                stored.setdefault(pid, set()).add(version)
        for rec in records:
            others = stored.get(rec.id, set()) - {rec.version}
            if not others:
                continue  # most plugins only ever ran one version: no history to read
            with contextlib.suppress(PlugbayError):
                # the rollback's own choice (runtime.swap), so the button and the route agree
                previous = host.manager.previous_version(rec.id)
                targets[rec.id] = previous if previous in others else None
    return targets
