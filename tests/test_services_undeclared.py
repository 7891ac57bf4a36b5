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


async def test_a_service_outside_its_declared_range_is_refused_in_one_set_of_words(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """The broker (inline) and the worker at load apply one rule and say it in one set of
    words (``isolation.offered_services.service_refusal``): the provider's 1.3.0 is in
    the range the code asks for, not in the one its manifest declares."""
    plugins("acme.provider", PROVIDER, extra=PROVIDES)
    after = '[dependencies]\n"acme.neighbour" = "^1"\n'  # so the provider has started by then
    declares = '[services]\noptional = { shouting = "^2" }\n'
    plugins("acme.neighbour", extra='isolation = "process"\n')
    plugins("acme.inline", requiring("shouting", "^1"), extra=after + declares)
    boxed = 'isolation = "process"\n' + after + declares
    plugins("acme.boxed", requiring("shouting", "^1"), extra=boxed)
    async with make_host() as host:
        inline = reason_without_id(host, "acme.inline")
        assert (
            "the host refused the service 'shouting' 1.3.0 (its manifest declares ^2): "
            "not declared or granted" in inline
        ), inline
        assert 'declare the range it works with: [services] requires = { shouting = "..." }' in (
            inline
        )
        assert reason_without_id(host, "acme.boxed") == inline
        assert await host.call("acme.neighbour", "ping") == "pong from acme.neighbour 1.0.0"


async def test_a_sandboxed_plugin_may_have_any_version_its_dependency_provides(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """A pre-release too: a declared dependency's service is had at any version, at load
    in a worker as by the broker, though ``*`` holds no pre-release."""
    plugins("acme.provider", PROVIDER, extra='[services]\nprovides = { shouting = "2.0.0-rc.1" }\n')
    depends = '[dependencies]\n"acme.provider" = "^1"\n'
    plugins("acme.inline", requiring("shouting", "^2.0.0-rc.1"), extra=depends)
    boxed = 'isolation = "process"\n' + depends
    plugins("acme.boxed", requiring("shouting", "^2.0.0-rc.1"), extra=boxed)
    async with make_host() as host:
        for plugin in ("acme.inline", "acme.boxed"):
            rec = host.plugin(plugin)
            assert str(rec.state) == "active", (plugin, rec.reason)
            assert await host.call(plugin, "go") == "HEY"
