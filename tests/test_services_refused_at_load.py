"""A service refused at load is refused alike inline and sandboxed: the plugin sees a
``PermissionDenied`` in the broker's words, the operator a ``security.denied`` event
(the worker's, marked as its report), and the host's own service ``plugbay.host``
without its permission is refused at load too (``isolation.offered_services``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugbay.api.errors import PermissionDenied, ServiceError
from plugbay.isolation.offered_services import AtLoad, refused_at_load, told_the_host
from plugbay.model.versions import Range
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_services_at_load import PROVIDER, reason_without_id

PROVIDES = '[services]\nprovides = { shouting = "1.3.0" }\n'
#: so the provider has started before the plugins that require its service
AFTER = '[dependencies]\n"acme.neighbour" = "^1"\n'

CATCHING = """
from plugbay import PermissionDenied, UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        try:
            context.services.require("shouting", "^1")
        except Exception as exc:  # what an author can catch it as, and its words
            self.seen = (isinstance(exc, PermissionDenied), str(exc))

    @command
    def seen_error(self) -> list:
        return list(self.seen)
"""

HOST_READER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.host = context.services.require("plugbay.host", "*")

    @command
    async def plugin_ids(self) -> list:
        return [row["id"] for row in await self.host.plugins()]
"""


def denials(host: Host, plugin: str) -> list[Any]:
    assert host.state is not None
    return [e for e in host.state.history(plugin, limit=100) if e.action == "security.denied"]


async def test_an_undeclared_service_is_one_refusal_and_one_security_event_in_both_backends(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.provider", PROVIDER, extra=PROVIDES)
    plugins("acme.neighbour", extra='isolation = "process"\n')
    plugins("acme.inline", CATCHING, extra=AFTER)
    plugins("acme.boxed", CATCHING, extra='isolation = "process"\n' + AFTER)
    async with make_host() as host:
        inline = await host.call("acme.inline", "seen_error")
        boxed = await host.call("acme.boxed", "seen_error")
        assert inline[0] is True, inline
        assert "the host refused the service 'shouting': not declared or granted" in inline[1]
        assert boxed == [inline[0], inline[1].replace("acme.inline", "acme.boxed")]
        # what the operator sees: the same denial, the sandboxed one as its worker's report
        (seen_inline,) = denials(host, "acme.inline")
        (seen_boxed,) = denials(host, "acme.boxed")
        assert seen_inline.reason == (
            "plugin 'acme.inline': the host's broker refused the service 'shouting'"
        )
        assert seen_boxed.reason == (
            "plugin 'acme.boxed': the host's broker refused the service 'shouting' "
            "[reported by its worker]"
        )
        for key in ("kind", "operation", "layer"):
            assert seen_boxed.details[key] == seen_inline.details[key], key
        assert (seen_inline.details["source"], seen_boxed.details["source"]) == ("host", "worker")
        assert denials(host, "acme.provider") == []  # told of the sender only
        assert await host.call("acme.neighbour", "ping") == "pong from acme.neighbour 1.0.0"


async def test_the_host_service_without_its_permission_is_refused_at_load_in_both_backends(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.inline", HOST_READER)
    plugins("acme.boxed", HOST_READER, extra='isolation = "process"\n')
    async with make_host() as host:
        inline = reason_without_id(host, "acme.inline")
        assert inline == (
            "plugin 'PLUGIN': the host refused the service 'plugbay.host', which needs "
            "host:state-read: not declared or granted. ask for it in the manifest "
            '([permissions] host = ["state-read"]), then the operator runs '
            "'plugbay grant PLUGIN host:state-read'"
        )
        assert reason_without_id(host, "acme.boxed") == inline
        (event,) = denials(host, "acme.boxed")
        assert event.details["permission"] == "host:state-read"


async def test_the_host_service_asked_for_is_refused_until_granted_then_served(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    asks = 'isolation = "process"\n[permissions]\nhost = ["state-read"]\n'
    plugins("acme.boxed", HOST_READER, extra=asks)
    async with make_host(inline=[], init_timeout=30.0) as host:  # sandboxed: not trusted
        assert reason_without_id(host, "acme.boxed").endswith(
            "not declared or granted. the operator can run 'plugbay grant PLUGIN host:state-read'"
        )
        await host.grant("acme.boxed", "host:state-read")
        await host.load("acme.boxed")
        assert await host.call("acme.boxed", "plugin_ids") == ["acme.boxed"]


def test_what_a_worker_was_offered_is_read_once_and_answers_as_before() -> None:
    at_load = AtLoad(
        {
            "shouting": ["1.3.0", "acme.provider", ""],
            "ranged": ["1.3.0", "acme.provider", "^2"],
            "dep": ["2.0.0-rc.1", "acme.provider", "any"],
            "untold": ["1.0.0", "acme.provider"],
        }
    )
    assert at_load.offered["shouting"] == ("1.3.0", "acme.provider")

    def said(name: str, wanted: str) -> BaseException | None:
        return refused_at_load("acme.x", name, Range.parse(wanted), at_load)

    missing = said("absent", "^1")
    assert isinstance(missing, ServiceError)
    assert "service 'absent' ^1 is not available" in str(missing)
    outside = said("shouting", "^2")
    assert isinstance(outside, ServiceError) and "not in the range ^2" in str(outside)
    undeclared = said("shouting", "^1")
    assert isinstance(undeclared, PermissionDenied)
    assert undeclared.details["declare"] == '[services] requires = { shouting = "^1" }'
    # to the host it is the worker's word in the same words, not a denial it vouches for
    assert type(told_the_host(undeclared)) is ServiceError
    assert str(told_the_host(undeclared)) == str(undeclared)
    assert "its manifest declares ^2" in str(said("ranged", "^1"))
    assert said("dep", "^2.0.0-rc.1") is None
    assert said("untold", "^1") is None
