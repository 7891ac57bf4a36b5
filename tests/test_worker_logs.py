"""What a plugin's records keep, in a worker as inline: a logged exception's traceback
(``logger.exception``), cut to its end when long; the message's arguments and fields.

A worker's records skip the logging module's caller lookup (``worker._lean_records``):
nothing of it is sent, and these tests show that nothing a user reads is lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from plugbay.monitor.bounds import TRACEBACK_CHARS
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.test_monitor import FAST, until

LOGGER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def fail_quietly(self, key: str) -> str:
        try:
            {}[key]
        except KeyError:
            self.context.logger.exception("looking %s up failed", key, extra={"fields": {"n": 7}})
        return "logged"

    @command
    def fail_long(self, size: int) -> str:
        try:
            raise ValueError("the end of it " + "x" * size + " THE END")
        except ValueError:
            self.context.logger.exception("a long one")
        return "logged"

    @command
    def ping(self) -> str:
        return "pong"
"""


def _records(host: Host, message: str) -> list[dict[str, Any]] | None:
    found = [r for r in host.logs("acme.logger") if r["message"].startswith(message)]
    return found or None


@pytest.mark.parametrize("backend", ["process", "inline"])
async def test_a_logged_exception_keeps_its_traceback_in_a_worker_as_inline_its_end_if_long(
    plugins: PluginFactory, make_host: Callable[..., Host], backend: str
) -> None:
    plugins("acme.logger", LOGGER, extra=f'isolation = "{backend}"\n')
    async with make_host(monitor=FAST, init_timeout=20) as host:
        assert host.plugin("acme.logger").isolation == backend
        assert await host.call("acme.logger", "fail_quietly", key="missing") == "logged"
        (record,) = await until(lambda: _records(host, "looking"), "the record")
        assert record["message"] == "looking missing up failed"  # its arguments applied
        assert record["level"] == 40
        fields = record["fields"]
        assert fields["n"] == 7 and fields["source"] == "plugin"
        trace = fields["exception"]
        assert trace.startswith("Traceback (most recent call last):")
        assert 'main.py", line 8, in fail_quietly' in trace
        assert trace.rstrip().endswith("KeyError: 'missing'")
        # a long one keeps its end, which names the error
        assert await host.call("acme.logger", "fail_long", size=50_000) == "logged"
        (record,) = await until(lambda: _records(host, "a long one"), "the long one")
        trace = record["fields"]["exception"]
        assert trace.startswith("… (") and "characters of the traceback cut)" in trace
        assert trace.rstrip().endswith(" THE END")
        assert len(trace) <= TRACEBACK_CHARS + 64
        assert await host.call("acme.logger", "ping") == "pong"


CARELESS = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def log_carelessly(self) -> str:
        self.context.logger.info("two %s and %s", "one")  # an argument short
        self.context.logger.warning("an object", extra={"fields": {"o": object(), "n": 3}})
        self.context.logger.info("after them")
        return "logged"
"""


async def test_a_record_with_bad_arguments_or_fields_is_kept_in_a_worker_as_inline(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    # inline, the host keeps these as asserted (monitor.logs.LogManager.emit); under pytest
    # its own log capture raises the bad format first, so only the worker is run here
    plugins("acme.logger", CARELESS, extra='isolation = "process"\n')
    async with make_host(monitor=FAST, init_timeout=20) as host:
        assert host.plugin("acme.logger").isolation == "process"
        assert await host.call("acme.logger", "log_carelessly") == "logged"
        await until(lambda: _records(host, "after them"), "the record after them")
        (short,) = _records(host, "'two %s and %s'") or [None]
        assert short is not None, "the record an argument short was lost"
        assert short["message"] == "'two %s and %s' % ('one',)"  # what it said, as inline
        (odd,) = _records(host, "an object") or [None]
        assert odd is not None, "the record with an object in its fields was lost"
        assert odd["level"] == 30 and odd["fields"]["n"] == 3
        assert "object object at" in str(odd["fields"]["o"])
