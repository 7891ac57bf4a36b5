"""An operator's disable says so: ``plugin.disabled`` with the reason and who asked, after
the ``plugin.unloaded`` of its stop, on ``plugbay events`` (the API's event stream) and
to system plugins; the plugin's log keeps it at info, not as an error. A disable the
monitor makes for an alert rule is a warning, and says it was the monitor."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import PlugbayError
from plugbay.cli.system_events import _line
from plugbay.monitor.logs import BY_ALERT
from plugbay.runtime.host import Host
from tests._cli import PLUGBAY, cli_env, plugbay
from tests._running import plugbay_run
from tests._waiting import until, until_sync
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def work(self, fail: bool = False) -> str:
        if fail:
            raise RuntimeError("it failed, as asked")
        return "done"
"""

#: a system plugin that keeps every plugin.* event it hears
PROBE = """
from typing import Any

from plugbay import SystemEvent, SystemPlugin, command

class P(SystemPlugin):
    system_hooks = ("plugin.*",)

    def __init__(self) -> None:
        self.heard: list[dict[str, Any]] = []

    async def on_system_event(self, event: SystemEvent) -> None:
        self.heard.append({"kind": event.kind, "data": dict(event.data)})

    @command
    def heard_events(self) -> list[dict[str, Any]]:
        return self.heard
"""


def _json(*args: str, cwd: Path) -> Any:
    done = plugbay(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    if args[0] == "logs":  # one record a line
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_plugbay_disable_sends_plugin_disabled_with_its_reason_and_who(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.calc", CALC)
    plugins("acme.probe", PROBE, type="system")
    # a system plugin hears the host's events in the host's process: trusted, inline
    (tmp_path / "plugbay.toml").write_text('[policy]\ninline = ["acme.probe"]\n')
    with plugbay_run(tmp_path):
        follow = subprocess.Popen(
            [*PLUGBAY, "events", "--kind", "plugin.*", "--count", "2", "--json"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cli_env(),
        )  # fmt: skip
        try:
            assert follow.stderr is not None
            assert "following events" in follow.stderr.readline()  # subscribed from here
            done = plugbay("disable", "acme.calc", "--reason", "ticket 42: noisy", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            streamed, rest = follow.communicate(timeout=60)
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait()
        assert follow.returncode == 0, rest
        unloaded, disabled = (json.loads(line) for line in streamed.splitlines())
        assert unloaded["kind"] == "plugin.unloaded"  # its stop, then why it is off
        assert disabled["kind"] == "plugin.disabled" and disabled["source"] == "host"
        said = {
            "plugin": "acme.calc",
            "version": "1.0.0",
            "reason": "ticket 42: noisy",
            "by": "the API, with the host's token",
        }
        assert disabled["data"] == said

        # the system plugin heard the same event
        def heard() -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = _json(
                "call", "acme.probe", "heard_events", cwd=tmp_path
            )["result"]
            return [e for e in events if e["kind"] == "plugin.disabled"]

        (probe_heard,) = until_sync(heard, "the system plugin to hear plugin.disabled")
        assert probe_heard["data"] == said

        # the plugin's log keeps it as news, not as an error
        def logged() -> list[dict[str, Any]]:
            records = _json("logs", "acme.calc", cwd=tmp_path)
            return [r for r in records if r["fields"].get("event") == "plugin.disabled"]

        (record,) = until_sync(logged, "the monitor to log plugin.disabled")
        assert record["level"] == logging.INFO, record
        assert record["message"] == "plugin.disabled: ticket 42: noisy"
        shown = plugbay("logs", "acme.calc", "--level", "error", "--json", cwd=tmp_path)
        assert "plugin.disabled" not in shown.stdout
        # and its history says who
        history = _json("history", "acme.calc", cwd=tmp_path)
        (kept,) = [e for e in history if e["action"] == "disable"]
        assert (kept["reason"], kept["details"]) == ("ticket 42: noisy", {"by": said["by"]})

    # with no host, the history still says who disabled it
    assert plugbay("enable", "acme.calc", cwd=tmp_path).returncode == 0
    assert plugbay("disable", "acme.calc", cwd=tmp_path).returncode == 0
    newest = next(
        e for e in _json("history", "acme.calc", cwd=tmp_path) if e["action"] == "disable"
    )
    assert newest["details"] == {"by": "plugbay disable (no host serving its API)"}


def test_an_event_line_quotes_a_value_with_spaces_and_leaves_out_nulls() -> None:
    event = {"kind": "plugin.disabled", "source": "host", "time": 0.0,
             "data": {"plugin": "acme.calc", "version": "1.0.0", "reason": "ticket 42",
                      "by": None}}  # fmt: skip
    assert _line(event).split("  ")[1:] == [
        "plugin.disabled", "acme.calc", 'version=1.0.0 reason="ticket 42"'
    ]  # fmt: skip


async def test_host_disable_and_an_alert_rule_s_disable_send_plugin_disabled(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.calc", CALC)
    plugins("acme.bad", CALC)
    heard: list[tuple[str, dict[str, Any]]] = []

    async def hear(event: Any) -> None:
        heard.append((event.kind, dict(event.data)))

    rule = {"threshold": 0.5, "window": 5, "min-calls": 2, "disable": True}
    fast = {"interval": 0.05, "health-interval": 0.1, "health-timeout": 0.3}
    async with make_host(monitor={**fast, "alerts": {"error-rate": rule}}) as host:
        host.events.listen("test.hears", 0, ("plugin.disabled",), hear)
        await host.disable("acme.calc")
        for _ in range(3):
            with contextlib.suppress(PlugbayError):
                await host.call("acme.bad", "work", fail=True)
        await until(lambda: str(host.plugin("acme.bad").state) == "disabled", "the alert's disable")
        await host.events.drain()
        by_plugin = {data["plugin"]: data for _, data in heard}
        # an application's own disable: the default reason, and no one named
        assert by_plugin["acme.calc"]["reason"] == "disabled by the operator"
        assert by_plugin["acme.calc"]["by"] is None
        # the monitor's, for a firing alert rule that disables: said, and a warning
        assert by_plugin["acme.bad"]["reason"].startswith("alert error-rate:")
        assert by_plugin["acme.bad"]["by"] == BY_ALERT

        def level_of(plugin_id: str) -> int | None:
            for r in host.logs(plugin_id):
                if r["fields"].get("event") == "plugin.disabled":
                    return int(r["level"])
            return None

        assert await until(lambda: level_of("acme.calc"), "the log of the disable") == logging.INFO
        assert await until(lambda: level_of("acme.bad"), "the log of the alert") == logging.WARNING
