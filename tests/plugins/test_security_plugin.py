"""core.security: the audit trail, on a real host over copies of the bundled plugins."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from plugbay import PluginCallError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory
from tests.plugins.conftest import load_engine

TOOL = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

BROKEN = """
from plugbay import UtilityPlugin

class P(UtilityPlugin):
    async def initialize(self, context):
        raise RuntimeError("no keys found")
"""

# Loaded after core.security (same level, later id), so its failure reaches a subscriber.
NEEDS_LOGGING = '[dependencies]\n"system.logging" = "^1.0"\n'


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled("core/system", "core/security")
    plugins("acme.tool", TOOL)
    plugins("zeta.broken", BROKEN, extra=NEEDS_LOGGING)
    return plugins


def start(tree: PluginFactory, state: Path, **config: Any) -> Host:
    return Host(
        tree.root,
        state_dir=state,
        entry_points=False,
        config={"core.security": config} if config else None,
    )


def audit_file(state: Path) -> Path:
    return state / "data" / "core.security" / "audit.jsonl"


def entries(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit_file(state).read_text().splitlines()]


def rewrite(state: Path, lines: list[dict[str, Any]]) -> None:
    audit_file(state).write_text("".join(json.dumps(e) + "\n" for e in lines))


def sha256_of(entry: dict[str, Any]) -> str:
    """The documented hash, computed here independently of the plugin's code."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def test_lifecycle_events_form_a_verifiable_chain(
    tree: PluginFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with start(tree, state) as host:
        assert str(host.plugin("zeta.broken").state) == "failed"
        await host.unload("acme.tool")
        await host.events.drain()
        seq = await host.call("core.security", "record", kind="security.key.rotated", detail="k2")
        trail = await host.call("core.security", "trail", limit=1000)
        assert trail[-1]["seq"] == seq and trail[-1]["kind"] == "security.key.rotated"
        kinds = [e["kind"] for e in trail]
        assert {"plugin.loaded", "plugin.failed", "plugin.unloaded", "host.started"} <= set(kinds)

        failed = await host.call("core.security", "trail", plugin="zeta.broken")
        assert [e["kind"] for e in failed] == ["plugin.failed"]
        assert failed[0]["data"]["reason"].startswith(
            "plugin 'zeta.broken': initialize raised RuntimeError: no keys found"
        )
        assert failed[0]["source"] == "host"
        tool = await host.call("core.security", "trail", plugin="acme.tool")
        assert [e["kind"] for e in tool] == ["plugin.loaded", "plugin.unloaded"]
        only_plugin = await host.call("core.security", "trail", kind="plugin", limit=1000)
        assert {e["kind"] for e in only_plugin} == {
            "plugin.loaded",
            "plugin.failed",
            "plugin.unloaded",
        }
        last_two = await host.call("core.security", "trail", limit=2)
        assert [e["seq"] for e in last_two] == [seq - 1, seq]

        verdict = await host.call("core.security", "verify")
        assert verdict == {"ok": True, "entries": seq, "first_bad_seq": None, "reason": None}
    stored = entries(state)
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert stored[0]["prev"] == "0" * 64
    for before, entry in itertools.pairwise(stored):
        assert entry["prev"] == before["hash"]
    assert all(e["hash"] == sha256_of(e) for e in stored)
    assert "host.stopping" in [e["kind"] for e in stored]  # recorded before the plugin stops


async def test_a_failure_before_the_trail_opened_is_on_record(
    tree: PluginFactory, tmp_path: Path
) -> None:
    # 'aaa.early' fails, then 'aab.slow' awaits in initialize: the host's event bus runs
    # and hands 'plugin.failed aaa.early' to the subscribers of that moment, before
    # core.security has started. Its 'opened' entry still records the failure.
    tree("aaa.early", BROKEN)
    tree(
        "aab.slow",
        "import asyncio\nfrom plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        "    async def initialize(self, context):\n        await asyncio.sleep(0)\n",
    )
    # Plugins start side by side, so the failure lands before the trail opens (in its
    # 'opened' entry) or after it (as its own entry): either way it is on record.
    async with start(tree, tmp_path / "state") as host:
        opened = await host.call("core.security", "trail", kind="security.audit.opened")
        failed = await host.call("core.security", "trail", kind="plugin.failed")
        verdict = await host.call("core.security", "verify")
    states = {p["id"]: p for p in opened[-1]["data"]["plugins"]}
    later = [e for e in failed if e["data"].get("plugin") == "aaa.early"]
    if states["aaa.early"]["state"] == "failed":
        assert "no keys found" in states["aaa.early"]["reason"]
    else:
        assert later, (states["aaa.early"], failed)
        assert "no keys found" in later[-1]["data"]["reason"]
    assert states["aab.slow"]["state"] in {"active", "initializing", "loaded"}
    assert verdict["ok"] is True


async def test_record_refuses_what_is_not_a_security_note(
    tree: PluginFactory, tmp_path: Path
) -> None:
    async with start(tree, tmp_path / "state") as host:
        with pytest.raises(PluginCallError, match=r"kind must start with 'security\.'.*'note'"):
            await host.call("core.security", "record", kind="note", detail="x")
        for reserved in ("security.audit", "security.audit.resumed"):
            with pytest.raises(PluginCallError, match="reserved for the audit trail itself"):
                await host.call("core.security", "record", kind=reserved, detail="x")
        with pytest.raises(PluginCallError, match="detail is 10001 characters; at most 10000"):
            await host.call("core.security", "record", kind="security.x", detail="x" * 10_001)
        seq = await host.call(
            "core.security", "record", kind="security.grant", detail="net", plugin="acme.tool"
        )
        about = await host.call("core.security", "trail", plugin="acme.tool", kind="security")
        assert [(e["seq"], e["source"], e["data"]) for e in about] == [
            (seq, "record", {"detail": "net", "plugin": "acme.tool"})
        ]


async def test_tampering_is_pinned_to_the_entry_and_a_restart_continues(
    tree: PluginFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with start(tree, state):
        pass
    first = entries(state)
    async with start(tree, state) as host:
        assert (await host.call("core.security", "verify"))["ok"] is True
    second = entries(state)
    resumed = second[len(first)]
    assert resumed["seq"] == first[-1]["seq"] + 1
    assert resumed["prev"] == first[-1]["hash"]

    victim = second[3]
    victim["data"]["plugin"] = "someone.else"
    rewrite(state, second)
    async with start(tree, state) as host:
        verdict = await host.call("core.security", "verify")
    assert verdict == {
        "ok": False,
        "entries": verdict["entries"],
        "first_bad_seq": victim["seq"],
        "reason": "entry altered: hash does not match",
    }
    assert verdict["entries"] > len(second)  # every entry is counted, also after the break


async def test_a_cut_short_last_line_starts_a_new_segment(
    tree: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    async with start(tree, state):
        pass
    last = entries(state)[-1]
    with audit_file(state).open("ab") as f:
        f.write(b'{"seq": 999, "time": 1.0, "kind": "plugin.lo')  # a crash mid-write
    with caplog.at_level(logging.WARNING, logger="plugbay.plugin.core.security"):
        async with start(tree, state) as host:
            audit = await host.call("core.security", "trail", kind="security.audit")
            verdict = await host.call("core.security", "verify")
    marker, opened = audit[-2:]
    assert any("1 unreadable line(s) after entry" in r.getMessage() for r in caplog.records)
    assert marker["kind"] == "security.audit.resumed"
    assert (marker["seq"], marker["prev"]) == (last["seq"] + 1, last["hash"])
    assert marker["data"]["skipped_lines"] == 1
    assert opened["kind"] == "security.audit.opened" and opened["prev"] == marker["hash"]
    assert verdict["ok"] is True, verdict
    lines = audit_file(state).read_bytes().split(b"\n")
    assert lines[last["seq"]].endswith(b'"kind": "plugin.lo')  # kept, on a line of its own
    assert json.loads(lines[last["seq"] + 1])["kind"] == "security.audit.resumed"


async def test_an_altered_last_entry_is_not_passed_over(
    tree: PluginFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with start(tree, state):
        pass
    stored = entries(state)
    stored[-1]["kind"] = "host.started"  # still a well-formed entry: tampering, not damage
    rewrite(state, stored)
    async with start(tree, state) as host:
        verdict = await host.call("core.security", "verify")
        resumed = await host.call("core.security", "trail", kind="security.audit.resumed")
    assert (verdict["ok"], verdict["first_bad_seq"]) == (False, stored[-1]["seq"])
    assert resumed == []


async def test_a_hot_reload_continues_the_chain(tree: PluginFactory, tmp_path: Path) -> None:
    async with start(tree, tmp_path / "state") as host:
        before = await host.call("core.security", "record", kind="security.note", detail="a")
        await host.reload("core.security")
        after = await host.call("core.security", "record", kind="security.note", detail="b")
        await host.events.drain()
        kinds = [e["kind"] for e in await host.call("core.security", "trail", limit=10)]
        verdict = await host.call("core.security", "verify")
    assert after == before + 2  # the new version's 'opened' entry sits between
    assert kinds[-3:] == ["security.audit.opened", "security.note", "plugin.reloaded"]
    assert verdict["ok"] is True


async def test_fsync_policy(
    tree: PluginFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[float] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("audit.jsonl"):
            synced.append(1)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    async with start(tree, tmp_path / "batched") as host:
        synced.clear()
        for i in range(30):
            await host.call("core.security", "record", kind="security.note", detail=str(i))
        assert len(synced) <= 1  # at most once a second …
        size_flushed = audit_file(tmp_path / "batched").stat().st_size
        assert audit_file(tmp_path / "batched").read_bytes()[:size_flushed].count(b"\n") >= 30
    assert len(synced) >= 1  # … and the rest on cleanup
    async with start(tree, tmp_path / "always", fsync="always") as host:
        synced.clear()
        for i in range(30):
            await host.call("core.security", "record", kind="security.note", detail=str(i))
        assert len(synced) >= 30
        info = host.manager.get_plugin("core.security")
        assert info.get_system_info()["fsync"] == "always"  # type: ignore[attr-defined]
    async with start(tree, tmp_path / "bad", fsync="sometimes") as host:
        rec = host.plugin("core.security")
        assert str(rec.state) == "failed"
        assert "fsync" in (rec.reason or "")


# -- the chain format itself, on files the test writes ------------------------------------


@pytest.fixture(scope="module")
def chain() -> Any:
    return load_engine("core/security", "chain")


def write_chain(chain: Any, path: Path, n: int) -> list[dict[str, Any]]:
    prev, out = chain.GENESIS, []
    for seq in range(1, n + 1):
        entry = chain.make_entry(seq, 1000.0 + seq, "plugin.loaded", "host", {"i": seq}, prev)
        out.append(entry)
        prev = entry["hash"]
    path.write_bytes(b"".join(chain.encode(e) for e in out))
    return out


def verdict_of(chain: Any, path: Path) -> dict[str, Any]:
    return dict(chain.verify(chain.forward_lines(path, path.stat().st_size)))


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "reason"),
    [
        ("rehash", 4, "chain broken: prev does not match"),
        ("delete", 4, "entries missing: expected seq 4, found 5"),
        ("swap", 4, "entries missing: expected seq 4, found 5"),
        ("garbage", 4, "line 4 is not a complete audit entry"),
        ("truncate", 9, "line 9 is not a complete audit entry"),
    ],
)
def test_chain_names_the_first_bad_entry(
    chain: Any, tmp_path: Path, tamper: str, bad_seq: int, reason: str
) -> None:
    path = tmp_path / "audit.jsonl"
    chained = write_chain(chain, path, 8)
    lines = path.read_bytes().splitlines(keepends=True)
    if tamper == "rehash":  # altered, and its own hash recomputed to look whole
        forged = dict(chained[3], data={"i": "forged"})
        forged["hash"] = sha256_of(forged)
        lines[3] = json.dumps(forged).encode() + b"\n"
    elif tamper == "delete":
        del lines[3]
    elif tamper == "swap":
        lines[3], lines[4] = lines[4], lines[3]
    elif tamper == "garbage":
        lines[3] = b"not json at all\n"
    else:
        lines.append(b'{"seq": 9, "ti')
    path.write_bytes(b"".join(lines))
    verdict = verdict_of(chain, path)
    assert verdict["ok"] is False
    assert verdict["first_bad_seq"] == bad_seq
    assert verdict["reason"].startswith(reason)


def test_chain_tail_and_reverse_reading(chain: Any, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    assert chain.tail(path) == chain.Tail(0, chain.GENESIS, 0, False)
    chained = write_chain(chain, path, 3000)  # several 64 KiB blocks
    end = chain.tail(path)
    assert (end.seq, end.prev, end.unreadable, end.unterminated) == (
        3000,
        chained[-1]["hash"],
        0,
        False,
    )
    backwards = [json.loads(line)["seq"] for line in chain.reverse_lines(path)]
    assert backwards == list(range(3000, 0, -1))
    with path.open("ab") as f:
        f.write(b"garbage\n\n{broken")
    end = chain.tail(path)
    assert (end.seq, end.unreadable, end.unterminated) == (3000, 2, True)
    assert verdict_of(chain, path)["first_bad_seq"] == 3001
