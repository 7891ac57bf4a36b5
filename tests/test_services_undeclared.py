"""A service a plugin requires without declaring it under ``[services] requires`` (it is
offered) fails its load, sandboxed as inline, in the broker's words; a neighbour still
answers, and one whose provider is a declared dependency loads and calls it
(``isolation.offered_services.refused_at_load``)."""

from __future__ import annotations

from collections.abc import Callable

from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_services_at_load import PROVIDER, reason_without_id, requiring

PROVIDES = '[services]\nprovides = { shouting = "1.3.0" }\n'


async def test_an_undeclared_service_fails_the_load_sandboxed_as_inline(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.provider", PROVIDER, extra=PROVIDES)
    after = '[dependencies]\n"acme.neighbour" = "^1"\n'  # so the provider has started by then
    plugins("acme.neighbour", extra='isolation = "process"\n')
    plugins("acme.inline", requiring("shouting", "^1"), extra=after)
    plugins("acme.boxed", requiring("shouting", "^1"), extra='isolation = "process"\n' + after)
    async with make_host() as host:
        assert host.manager.services.provider_of("shouting") == "acme.provider"
        inline = reason_without_id(host, "acme.inline")
        boxed = reason_without_id(host, "acme.boxed")
        assert "the host refused the service 'shouting': not declared or granted" in inline
        assert 'declare it in the manifest: [services] requires = { shouting = "^1" }' in inline
        assert boxed == inline  # refused at load, not at its first call, in the same words
        assert await host.call("acme.neighbour", "ping") == "pong from acme.neighbour 1.0.0"


async def test_a_sandboxed_plugin_may_require_a_service_its_dependency_provides(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.provider", PROVIDER, extra=PROVIDES)
    plugins(
        "acme.boxed",
        requiring("shouting", "^1"),
        extra='isolation = "process"\n[dependencies]\n"acme.provider" = "^1"\n',
    )
    async with make_host() as host:
        assert str(host.plugin("acme.boxed").state) == "active"
        assert await host.call("acme.boxed", "go") == "HEY"
