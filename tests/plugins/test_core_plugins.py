"""system.logging, utility.formatters, core.security and core.monitoring on a real host."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import pytest

from plugbay import PluginCallError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.plugins.conftest import BUNDLED, load_engine


async def test_everything_bundled_is_active(bundled: Host) -> None:
    assert {r.id: str(r.state) for r in bundled.plugins()} == {
        "core.monitoring": "active",
        "core.security": "active",
        "extension.processor": "active",
        "integration.irc": "active",
        "integration.protocol": "active",
        "system.logging": "active",
        "utility.formatters": "active",
    }
    assert bundled.plugin("system.logging").load_seconds is not None


async def test_logging_captures_every_plugin_and_the_events(bundled: Host, tmp_path: Path) -> None:
    logging.getLogger("plugbay.plugin.utility.formatters").warning("disk almost full")
    await bundled.call("system.logging", "log", message="hello", level="error", source="tests")
    await bundled.events.drain()
    records = await bundled.call("system.logging", "tail", limit=200)
    messages = [r.message for r in records]
    assert "disk almost full" in messages and "hello" in messages
    assert any(m.startswith("plugin.loaded plugin=core.security") for m in messages)
    only = await bundled.call(
        "system.logging", "tail", plugin="utility.formatters", level="warning"
    )
    assert [r.message for r in only] == ["disk almost full"]
    stored = (
        (tmp_path / "state" / "data" / "system.logging" / "logs.jsonl").read_text().splitlines()
    )
    assert any(json.loads(line)["message"] == "hello" for line in stored)
    with pytest.raises(Exception, match="parameter 'level' expects"):
        await bundled.call("system.logging", "log", message="x", level="loud")


async def test_formatters(bundled: Host) -> None:
    call = bundled.call
    assert await call("utility.formatters", "normalize", text="  “hi”   there ") == '"hi" there'
    assert await call("utility.formatters", "wrap", text="a b c d e f", width=10) == "a b c d e\nf"
    assert await call("utility.formatters", "sentence_case", text="I AM HERE. WHY I'M") == (
        "I am here. Why I'm"
    )
    assert await call("utility.formatters", "table", rows=[{"a": 1}, {"b": None, "a": 22}]) == (
        "a   b\n--  -\n1\n22"
    )
    assert await call("utility.formatters", "truncate", text="abcdef", limit=4) == "abc…"
    with pytest.raises(PluginCallError, match="width must be at least 10 columns, got 3"):
        await call("utility.formatters", "wrap", text="x", width=3)


def test_formatting_engine_edge_cases() -> None:
    f = load_engine("utility/formatters", "formatting")
    assert f.table([]) == ""
    assert f.truncate("abc", 10) == "abc"
    assert f.truncate("abcdef", 1) == "…"
    assert f.sentence_case("") == ""
    with pytest.raises(ValueError, match="limit must not be negative"):
        f.truncate("x", -1)


async def test_audit_trail_is_a_verifiable_hash_chain(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    plugins.copy_bundled("core/system", "core/security")
    plugins(
        "acme.broken",
        "from plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        "    async def initialize(self, context):\n        raise RuntimeError('nope')\n",
    )
    state = tmp_path / "state"
    async with Host(plugins.root, state_dir=state, entry_points=False) as host:
        await host.call("core.security", "record", kind="security.note", detail="operator was here")
        with pytest.raises(PluginCallError, match=r"kind must start with 'security\.'"):
            await host.call("core.security", "record", kind="note", detail="x")
        await host.events.drain()
        kinds = [e["kind"] for e in await host.call("core.security", "trail", limit=100)]
        assert "plugin.failed" in kinds and "security.note" in kinds
        failed = await host.call("core.security", "trail", plugin="acme.broken")
        assert failed[0]["data"]["reason"].startswith("plugin 'acme.broken': initialize raised")
        assert (await host.call("core.security", "verify"))["ok"] is True
    # a restart continues the chain
    async with Host(plugins.root, state_dir=state, entry_points=False) as host:
        verdict = await host.call("core.security", "verify")
        assert verdict["ok"] is True and verdict["entries"] > 5
    # tampering is found, at the entry that was changed
    audit = state / "data" / "core.security" / "audit.jsonl"
    lines = audit.read_text().splitlines()
    entry = json.loads(lines[3])
    entry["data"]["plugin"] = "someone.else"
    lines[3] = json.dumps(entry)
    audit.write_text("\n".join(lines) + "\n")
    async with Host(plugins.root, state_dir=state, entry_points=False) as host:
        verdict = await host.call("core.security", "verify")
        assert verdict == {
            "ok": False,
            "entries": verdict["entries"],
            "first_bad_seq": entry["seq"],
            "reason": "entry altered: hash does not match",
        }


async def test_health_reporter(tmp_path: Path, plugins: PluginFactory) -> None:
    plugins.copy_bundled("core/system", "core/monitoring")
    plugins(
        "acme.flaky",
        "from plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n"
        "    @command\n    def work(self, fail: bool) -> str:\n"
        "        if fail:\n            raise OSError('disk')\n        return 'ok'\n",
    )
    plugins(
        "acme.broken",
        "from plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        "    async def initialize(self, context):\n        raise RuntimeError('nope')\n",
    )
    async with Host(plugins.root, state_dir=tmp_path / "s", entry_points=False) as host:
        report = await host.call("core.monitoring", "report")
        by_id = {p.id: p for p in report.plugins}
        assert by_id["acme.broken"].status == "failing"
        assert by_id["acme.broken"].reason.startswith("plugin 'acme.broken': initialize raised")
        assert by_id["acme.flaky"].status == "green"
        assert report.overall == "failing"
        assert report.failures_seen >= 1
        await host.disable("acme.broken")
        assert await host.call("core.monitoring", "status") == "green"
        for fail in (True, True, False, False, False, True):
            with contextlib.suppress(PluginCallError):
                await host.call("acme.flaky", "work", fail=fail)
        report = await host.call("core.monitoring", "report")
        flaky = next(p for p in report.plugins if p.id == "acme.flaky")
        assert (flaky.status, flaky.calls, flaky.error_rate) == ("degraded", 6, 0.5)
        assert report.overall == "degraded"
        assert next(p for p in report.plugins if p.id == "acme.broken").status == "disabled"


async def test_health_reporter_rates_a_plugin_restarting_after_a_crash_as_starting(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """A worker's crash and its restart are no failure of the host's: not failing."""
    from plugbay import PluginCrashed

    plugins.copy_bundled("core/system", "core/monitoring")
    plugins(
        "acme.crasher",
        "import os\nfrom plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n"
        "    @command\n    def crash(self) -> None:\n        os._exit(9)\n",
        extra='isolation = "process"\n',
    )
    host = Host(plugins.root, state_dir=tmp_path / "s", entry_points=False, restart_backoff=60)
    async with host:
        with pytest.raises(PluginCrashed):
            await host.call("acme.crasher", "crash")
        report = await host.call("core.monitoring", "report")
        crasher = next(p for p in report.plugins if p.id == "acme.crasher")
        assert (crasher.state, crasher.status) == ("restarting", "starting")
        assert report.overall == "green"


def test_bundled_plugins_validate() -> None:
    import subprocess
    import sys

    for manifest in sorted(BUNDLED.glob("*/*/plugin.toml")):
        result = subprocess.run(
            [sys.executable, "-m", "plugbay.cli", "validate", str(manifest.parent)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
