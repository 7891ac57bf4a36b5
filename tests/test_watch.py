"""Watching plugin directories (plugbay.watch): real inotify events, real reloads."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from plugbay.api.errors import PlugbayError
from plugbay.runtime.host import Host
from plugbay.runtime.watch import PluginWatcher, WatchResult
from tests.conftest import PluginFactory

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def label(self) -> str:
        return "{label}"
"""


def edit(directory: Path, label: str, version: str | None = None) -> None:
    (directory / "main.py").write_text(CODE.format(label=label))
    if version is not None:
        manifest = directory / "plugin.toml"
        lines = [
            f'version = "{version}"' if line.startswith("version") else line
            for line in manifest.read_text().splitlines()
        ]
        manifest.write_text("\n".join(lines) + "\n")


class Watching:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.results: asyncio.Queue[WatchResult] = asyncio.Queue()

    async def next(self) -> WatchResult:
        # a bound so that a missed event fails the test instead of hanging it
        return await asyncio.wait_for(self.results.get(), timeout=15)

    async def quiet(self, seconds: float = 0.6) -> list[WatchResult]:
        """Whatever else arrives within ``seconds`` (to show nothing more did)."""
        await asyncio.sleep(seconds)
        out = []
        while not self.results.empty():
            out.append(self.results.get_nowait())
        return out


@pytest.fixture
def watched(make_host: Callable[..., Host]) -> Callable[..., AsyncIterator[Watching]]:
    @asynccontextmanager
    async def start(**host_options: object) -> AsyncIterator[Watching]:
        async with make_host(**host_options) as host:
            watching = Watching(host)
            watcher = PluginWatcher(host, on_change=watching.results.put_nowait)
            stop = asyncio.Event()
            task = asyncio.ensure_future(watcher.run(stop))
            await asyncio.wait_for(watcher.ready.wait(), timeout=15)
            try:
                yield watching
            finally:
                stop.set()
                await asyncio.wait_for(task, timeout=15)

    return start  # type: ignore[return-value]


@pytest.fixture
def greeter(plugins: PluginFactory) -> Path:
    return plugins("acme.greeter", CODE.format(label="v1"), dirname="greeter")


async def test_saving_a_change_reloads_the_plugin_once_per_burst(
    greeter: Path, watched: Callable[[], AsyncIterator[Watching]]
) -> None:
    async with watched() as w:  # type: ignore[attr-defined]
        assert await w.host.call("acme.greeter", "label") == "v1"
        # an editor's burst: several writes of the code and the manifest
        for i in range(5):
            edit(greeter, f"draft{i}")
        edit(greeter, "v2", "1.0.1")
        result = await w.next()
        assert (result.plugin_id, result.action, result.ok) == ("acme.greeter", "reload", True)
        assert result.message == "reloaded acme.greeter 1.0.0 → 1.0.1"
        assert await w.host.call("acme.greeter", "label") == "v2"
        assert await w.quiet() == []  # one reload for the whole burst
        assert w.host.state is not None
        reloads = [e for e in w.host.state.history("acme.greeter") if e.action == "reload"]
        assert len(reloads) == 1


async def test_a_syntax_error_saved_mid_edit_keeps_the_plugin_serving(
    greeter: Path, watched: Callable[[], AsyncIterator[Watching]]
) -> None:
    async with watched() as w:  # type: ignore[attr-defined]
        (greeter / "main.py").write_text("class P(:\n")
        result = await w.next()
        assert not result.ok
        assert "reload failed; 1.0.0 keeps serving: syntax error in 'main'" in result.message
        assert await w.host.call("acme.greeter", "label") == "v1"
        edit(greeter, "fixed")
        result = await w.next()
        assert result.ok
        assert await w.host.call("acme.greeter", "label") == "fixed"


async def test_deleted_files_while_watching_leave_the_plugin_serving(
    greeter: Path, watched: Callable[[], AsyncIterator[Watching]]
) -> None:
    async with watched() as w:  # type: ignore[attr-defined]
        (greeter / "main.py").unlink()
        result = await w.next()
        assert not result.ok
        assert "1.0.0 keeps serving: entry module 'main' does not exist" in result.message
        assert await w.host.call("acme.greeter", "label") == "v1"
        (greeter / "plugin.toml").unlink()
        result = await w.next()
        assert (result.action, result.ok) == ("missing", False)
        assert "its manifest in" in result.message and "is gone (deleted or renamed)" in (
            result.message
        )
        assert "1.0.0 keeps serving" in result.message
        assert await w.host.call("acme.greeter", "label") == "v1"
        # removed on purpose: the line names what stops it, and that works with no files
        assert result.message.endswith("to stop serving it: 'plugbay unload acme.greeter'.")
        await w.host.unload("acme.greeter")
        assert str(w.host.plugin("acme.greeter").state) != "active"


async def test_a_renamed_plugin_directory_is_reloaded_from_its_new_place(
    greeter: Path, watched: Callable[[], AsyncIterator[Watching]]
) -> None:
    async with watched() as w:  # type: ignore[attr-defined]
        moved = greeter.with_name("greeter-renamed")
        shutil.move(greeter, moved)
        result = await w.next()
        assert (result.action, result.ok) == ("rename", True), result.message
        assert str(moved) in result.message
        rec = w.host.plugin("acme.greeter")
        assert rec.manifest is not None and rec.manifest.root == moved
        edit(moved, "after-rename")
        result = await w.next()
        assert result.ok
        assert await w.host.call("acme.greeter", "label") == "after-rename"


async def test_a_fixed_plugin_and_a_new_plugin_are_loaded(
    plugins: PluginFactory, watched: Callable[[], AsyncIterator[Watching]]
) -> None:
    broken = plugins("acme.broken", "raise RuntimeError('not yet')\n", dirname="broken")
    async with watched() as w:  # type: ignore[attr-defined]
        assert str(w.host.plugin("acme.broken").state) == "failed"
        edit(broken, "now")
        result = await w.next()
        assert (result.plugin_id, result.action, result.ok) == ("acme.broken", "load", True)
        assert await w.host.call("acme.broken", "label") == "now"
        plugins("acme.newcomer", CODE.format(label="new"), dirname="newcomer")
        result = await w.next()
        assert (result.plugin_id, result.action, result.ok) == ("acme.newcomer", "load", True)
        assert await w.host.call("acme.newcomer", "label") == "new"


async def test_a_plugin_added_before_what_it_needs_starts_when_that_comes(
    plugins: PluginFactory, watched: Callable[[], AsyncIterator[Watching]]
) -> None:
    """It failed naming 'plugbay info X', which knew nothing of X, and stayed failed
    after X was added."""
    async with watched() as w:  # type: ignore[attr-defined]
        plugins("acme.app", CODE.format(label="app"), dirname="app",
                extra='[dependencies]\n"acme.base" = "^1"\n')  # fmt: skip
        result = await w.next()
        assert (result.plugin_id, result.action, result.ok) == ("acme.app", "load", False)
        assert "no plugin 'acme.base' is installed" in result.message
        assert (
            "add 'acme.base' to a plugin directory or 'plugbay install' it" in result.message
            and "plugbay info" not in result.message
        )
        plugins("acme.base", CODE.format(label="base"), dirname="base")
        results = [await w.next(), await w.next()]
        assert [(r.plugin_id, r.action, r.ok) for r in results] == [
            ("acme.base", "load", True),
            ("acme.app", "load", True),  # it waited for it
        ]
        assert await w.host.call("acme.app", "label") == "app"


async def test_dependents_follow_only_a_change_that_requires_it(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    base = plugins("acme.base", CODE.format(label="b1"), dirname="base")
    app = plugins(
        "acme.app",
        CODE.format(label="a1"),
        dirname="app",
        extra='[dependencies]\n"acme.base" = "^1"\n',
    )
    async with make_host() as host:
        watcher = PluginWatcher(host)
        before = host.plugin("acme.app").handle
        edit(base, "b2")  # code only
        results = await watcher.apply([base / "main.py"])
        assert [(r.plugin_id, r.action) for r in results] == [("acme.base", "reload")]
        assert host.plugin("acme.app").handle is before
        edit(base, "b3", "1.1.0")  # a new version: the dependent follows
        results = await watcher.apply([base / "main.py", base / "plugin.toml"])
        assert [(r.plugin_id, r.action) for r in results] == [
            ("acme.base", "reload"),
            (None, "dependents"),
        ]
        assert results[1].dependents == ["acme.app"]
        assert host.plugin("acme.app").handle is not before
        # both changed in one batch: the dependency first, each once
        edit(base, "b4", "1.2.0")
        edit(app, "a2", "1.0.1")
        results = await watcher.apply([app / "main.py", base / "main.py"])
        assert [(r.plugin_id, r.action) for r in results] == [
            ("acme.base", "reload"),
            ("acme.app", "reload"),
        ]
        assert await host.call("acme.app", "label") == "a2"


def test_plugbay_run_watch_reloads_on_save(greeter: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugbay.cli", "run", "--watch", "--no-metrics",
         "--http", "127.0.0.1:0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60  # a bound against a hang, not a performance goal
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "serving; press Ctrl-C" in line:
                break
        from tests._cli import plugbay

        # rollback acts on the running host (through its API), which has nothing earlier yet
        refused = plugbay("rollback", "acme.greeter", cwd=tmp_path)
        assert refused.returncode == 1
        assert "has no earlier version to roll back to: its history shows only 1.0.0" in (
            refused.stderr
        )
        edit(greeter, "v2", "1.0.1")
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "reloaded" in line or "failed" in line:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    output = "".join(seen) + rest
    assert "watching" in output
    assert "reloaded acme.greeter 1.0.0 → 1.0.1" in output, output
    assert proc.returncode == 130, output  # Ctrl-C, after the clean stop


async def test_a_dependent_that_cannot_follow_keeps_serving_and_says_why(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    base = plugins("acme.base", CODE.format(label="b1"), dirname="base")
    app = plugins(
        "acme.app",
        CODE.format(label="a1"),
        dirname="app",
        extra='[dependencies]\n"acme.base" = "^1"\n',
    )
    async with make_host() as host:
        (app / "main.py").write_text(
            "import nowhere_to_be_found\n"
        )  # broken on disk, not in this batch
        edit(base, "b2", "1.1.0")
        results = await PluginWatcher(host).apply([base / "plugin.toml"])
        assert [(r.plugin_id, r.action, r.ok) for r in results] == [
            ("acme.base", "reload", True),
            ("acme.app", "reload", False),
        ]
        assert "1.0.0 keeps serving: importing 'main' failed: no module named" in results[1].message
        assert await host.call("acme.app", "label") == "a1"
        assert await host.call("acme.base", "label") == "b2"


ENV_READER = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def home(self) -> str | None:
        return os.environ.get("HOME")
"""


async def test_a_reload_that_asks_for_a_new_permission_says_it_is_not_granted(
    plugins: PluginFactory, watched: Callable[..., AsyncIterator[Watching]]
) -> None:
    # sandboxed (deny by default): a permission the saved manifest adds is not in force
    # until the operator grants it, and the reload line says so and how
    directory = plugins("acme.reader", ENV_READER, dirname="reader")
    async with watched(inline=[], init_timeout=20.0) as w:  # type: ignore[attr-defined]
        assert await w.host.call("acme.reader", "home") is None
        manifest = directory / "plugin.toml"
        manifest.write_text(manifest.read_text() + '[permissions]\nenv = ["HOME"]\n')
        result = await w.next()
        assert (result.action, result.ok) == ("reload", True), result.message
        assert result.message == (
            "reloaded acme.reader 1.0.0 → 1.0.0; it now asks for env:HOME, not granted: "
            "it runs without it until the operator runs 'plugbay grant acme.reader env:HOME'"
        )
        assert await w.host.call("acme.reader", "home") is None  # as the line said
        # an edit of the code alone asks for nothing new: the line says nothing more
        (directory / "main.py").write_text(ENV_READER + "\n# edited\n")
        result = await w.next()
        assert result.message == "reloaded acme.reader 1.0.0 → 1.0.0", result.message


async def test_a_reload_that_drops_a_command_says_callers_of_it_are_refused(
    greeter: Path, watched: Callable[..., AsyncIterator[Watching]]
) -> None:
    async with watched() as w:  # type: ignore[attr-defined]
        assert await w.host.call("acme.greeter", "label") == "v1"
        # the command renamed in the editor: a caller still using the old name is refused
        (greeter / "main.py").write_text(CODE.replace("def label", "def title").format(label="v2"))
        result = await w.next()
        assert (result.action, result.ok) == ("reload", True), result.message
        assert result.message == (
            "reloaded acme.greeter 1.0.0 → 1.0.0; its command label is gone: "
            "a caller of it now gets 'has no command'"
        )
        assert await w.host.call("acme.greeter", "title") == "v2"
        with pytest.raises(PlugbayError, match="has no command 'label'"):
            await w.host.call("acme.greeter", "label")


def test_plugbay_run_watch_says_a_manifest_is_gone_not_missing_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A deleted manifest printed 'missing failed: …' in 'plugbay run --watch'; a failed
    reload still reads 'reload failed'."""
    from plugbay.cli._serve import _print_watch
    from plugbay.runtime.watch import WatchResult

    _print_watch(WatchResult("acme.x", "missing", False, "its manifest in /p is gone"))
    _print_watch(WatchResult("acme.x", "reload", False, "1.0.0 keeps serving: …"))
    lines = capsys.readouterr().out.splitlines()
    assert "manifest gone: its manifest in /p is gone" in lines[0], lines
    assert "missing failed" not in lines[0]
    assert "reload failed: 1.0.0 keeps serving" in lines[1], lines
