"""What a swap needs of the manager it swaps for, and nothing more
(:class:`plugbay.runtime.manager.PluginManager` implements it; each member is
documented there). The swapper (:mod:`plugbay.runtime.swap`) and upgrade
planning (:mod:`plugbay.runtime.upgrades`) see the manager only through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from plugbay.api import PluginContext
from plugbay.api.errors import PluginStateError
from plugbay.isolation import PluginHandle
from plugbay.isolation.policy import Placement
from plugbay.model.manifest import PluginManifest
from plugbay.runtime.events import EventBus
from plugbay.runtime.routing import Route

if TYPE_CHECKING:
    from plugbay.model.registry import PluginRegistry
    from plugbay.monitor import PluginMetrics
    from plugbay.runtime.records import ManagerSettings, PluginRecord
    from plugbay.runtime.services import ServiceHub
    from plugbay.runtime.store import PluginStore
    from plugbay.state import StateStore

__all__ = ["SwapHost"]


class SwapHost(Protocol):
    """What the swapper needs of the manager it swaps for, and nothing more
    (:class:`plugbay.runtime.manager.PluginManager` implements it; each member is
    documented there)."""

    settings: ManagerSettings
    registry: PluginRegistry
    services: ServiceHub
    events: EventBus
    state: StateStore | None
    store: PluginStore | None
    swap_guard: Callable[[str], None] | None

    @property
    def lifecycle_lock(self) -> asyncio.Lock: ...
    def swap_lock(self, plugin_id: str) -> asyncio.Lock: ...
    def record(self, plugin_id: str) -> PluginRecord: ...
    def list_plugins(self) -> list[PluginRecord]: ...
    def dependents(self, plugin_id: str, *, active_only: bool = True) -> list[str]: ...
    def start_order(self) -> list[str]: ...
    def route_of(self, plugin_id: str) -> Route | None: ...
    def set_route(self, plugin_id: str, route: Route) -> None: ...
    def record_changed(self, plugin_id: str) -> None: ...
    def hold_calls(self, plugin_id: str, until: asyncio.Future[None]) -> None: ...
    def end_hold(self, plugin_id: str, until: asyncio.Future[None]) -> None: ...
    def needs_of(self, manifest: PluginManifest) -> tuple[frozenset[str], list[str]]: ...
    def validated_config(self, manifest: PluginManifest) -> dict[str, Any]: ...
    def place(self, manifest: PluginManifest) -> Placement: ...
    async def launch(
        self,
        rec: PluginRecord,
        manifest: PluginManifest,
        config: dict[str, Any],
        metrics: PluginMetrics,
    ) -> tuple[PluginHandle, PluginContext]: ...
    async def initialize_handle(
        self, handle: PluginHandle, manifest: PluginManifest, context: PluginContext
    ) -> None: ...
    def supervise(self, rec: PluginRecord, handle: PluginHandle) -> None: ...
    def record_history(
        self,
        rec: PluginRecord,
        action: str,
        result: str,
        reason: str | None,
        details: dict[str, Any] | None,
    ) -> None: ...
    def not_active(self, rec: PluginRecord) -> PluginStateError: ...
