"""Without a running host, the read-only commands say so, show the plugins on disk as not
running, open the state read-only, and work on a read-only disk (a tmpfs remounted ro)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests.conftest import PluginFactory
from tests.test_full_disk import _mount

CALC = """
import logging
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        context.logger.warning("calc is ready")

    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""

READ_ONLY = (
    ["list"], ["list", "--json"], ["info", "acme.calc"], ["history"], ["history", "acme.other"],
    ["logs", "acme.calc"], ["alerts", "--all"], ["health", "--json"], ["deps"],
)  # fmt: skip


async def used_by_a_host(plugins: PluginFactory, cwd: Path, state: Path) -> None:
    """A host ran here: acme.other disabled, acme.calc logged; then it stopped."""
    plugins("acme.calc", CALC)
    plugins("acme.other", CALC)
    async with Host(plugins_dir=plugins.root, state_dir=state) as host:
        assert await host.call("acme.calc", "add", a=1) == 2
        await host.disable("acme.other", "maintenance")
        assert host.monitor is not None
        await host.monitor.tick()  # the log records reach the state


def snapshot(directory: Path) -> dict[str, str]:
    """Every file's digest; SQLite's -shm/-wal aside: a reader of a WAL database maps the
    shared-memory index (its read locks) even with mode=ro, and the WAL stays empty."""
    for wal in directory.glob("*.db-wal"):
        assert wal.stat().st_size == 0, wal
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.endswith(("-shm", "-wal"))
    }  # fmt: skip


def check_offline(cwd: Path, state: Path) -> None:
    args = ["--state", str(state)]
    for command in READ_ONLY:
        result = plugbay(*command, *(args if command[0] != "deps" else []), cwd=cwd)
        both = result.stdout + result.stderr
        assert "Traceback" not in both, (command, both)
        expected = 1 if command[0] == "health" else 0
        assert result.returncode == expected, (command, both)
        if command[0] != "deps":
            assert "no host is running on" in result.stderr, (command, result.stderr)
    rows = {r["id"]: r for r in json.loads(plugbay("list", "--json", *args, cwd=cwd).stdout)}
    assert rows["acme.calc"]["state"] == "not running"
    assert rows["acme.other"] == {
        **rows["acme.other"],
        "state": "disabled",
        "reason": "maintenance",
    }
    history = json.loads(plugbay("history", "--json", *args, cwd=cwd).stdout)
    assert ("acme.other", "disable") in {(e["plugin_id"], e["action"]) for e in history}
    logs = plugbay("logs", "acme.calc", *args, cwd=cwd).stdout
    assert "calc is ready" in logs


async def test_read_only_commands_change_nothing_in_the_state(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    state = tmp_path / ".plugbay"
    await used_by_a_host(plugins, tmp_path, state)
    before = snapshot(state)
    check_offline(tmp_path, state)
    assert snapshot(state) == before  # opened mode=ro: not a byte written, nothing made


@pytest.fixture
def read_only_state(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "small"
    reason = _mount(point, "16m")
    if reason is not None:
        pytest.skip(reason)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


async def test_read_only_commands_work_on_a_read_only_disk(
    plugins: PluginFactory, tmp_path: Path, read_only_state: Path
) -> None:
    state = read_only_state / "state"
    await used_by_a_host(plugins, tmp_path, state)
    remount = await asyncio.to_thread(
        subprocess.run, ["mount", "-o", "remount,ro", str(read_only_state)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
    with pytest.raises(OSError, match="Read-only file system"):
        (state / "probe").write_text("x")
    check_offline(tmp_path, state)
