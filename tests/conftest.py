"""Shared fixtures: write real plugin directories into tmp_path and start real hosts."""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import socket
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "plugins"

# The limits tests fork sandboxed children from this process, and a child's memory
# budget excludes the malloc arenas it inherits (isolation.limits: reserved address
# space the allocator may commit). Every thread that allocated while others did adds
# an arena (64 MiB reserved), and each host's monitor runs threads, so after many
# hosts the children's budgets shrank with test order. One arena keeps them exact.
# (Workers are forked from the zygote, a fresh process: the host's arenas never reach them.)
# Likewise the heap: glibc raises its mmap threshold after a large block is freed (up to
# 32 MiB), so later large blocks (a hostile-file test's multi-MiB manifests and wheels)
# come from the heap and leave free holes there that a forked child can fill past its
# budget. A fixed threshold keeps large blocks mmapped, and returned when freed.
with contextlib.suppress(OSError, AttributeError):
    ctypes.CDLL(None).mallopt(-8, 1)  # M_ARENA_MAX (glibc's malloc.h)
    ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: fixed, not dynamic

#: the ports `plugbay run` serves by default (`make run`): the API and the metrics
DEFAULT_PORTS = (8750, 9464)


@pytest.fixture(autouse=True, scope="session")
def default_ports_taken() -> Iterator[list[int]]:
    """Hold plugbay's default ports for the whole session, as `make run` beside it would:
    a test that binds a fixed default port then fails here, not only on a busy machine.
    (A port someone else already holds is as good: it is taken either way.)"""
    held: list[socket.socket] = []
    for port in DEFAULT_PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
            held.append(sock)
        except OSError:
            sock.close()
    try:
        yield [s.getsockname()[1] for s in held]
    finally:
        for sock in held:
            sock.close()


@pytest.fixture(autouse=True, scope="session")
def session_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's own temporary directory, under pytest's basetemp: TMPDIR for every
    subprocess a test starts, and tempfile's directory in this process. What code writes
    to "the temp directory" (a crash report, plugbay-internal-error-*.txt; scratch
    directories) then stays with the session's other files, which pytest cleans up, and
    a test run leaves nothing in the system's /tmp."""
    temp = tmp_path_factory.mktemp("tmp", numbered=False)
    patch = pytest.MonkeyPatch()
    patch.setenv("TMPDIR", str(temp))
    patch.setattr(tempfile, "tempdir", str(temp))
    try:
        yield temp
    finally:
        patch.undo()


class PluginFactory:
    """Writes plugin directories (manifest + code) under one plugins root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def __call__(
        self,
        plugin_id: str,
        code: str = "",
        *,
        version: str = "1.0.0",
        type: str = "utility",
        cls: str = "P",
        module: str = "main",
        extra: str = "",
        manifest: str | None = None,
        dirname: str | None = None,
    ) -> Path:
        directory = self.root / (dirname or f"{plugin_id}-{version}")
        directory.mkdir(parents=True, exist_ok=True)
        if manifest is None:
            manifest = (
                f'id = "{plugin_id}"\nversion = "{version}"\ntype = "{type}"\n'
                f'entry = "{module}:{cls}"\n' + textwrap.dedent(extra)
            )
        (directory / "plugin.toml").write_text(manifest)
        if not code:
            base = {
                "utility": "UtilityPlugin",
                "system": "SystemPlugin",
                "extension": "ExtensionPlugin",
            }.get(type, "UtilityPlugin")
            code = f"""
            from plugbay import {base}, command

            class {cls}({base}):
                @command
                def ping(self) -> str:
                    return "pong from {plugin_id} {version}"
            """
        (directory / f"{module}.py").write_text(textwrap.dedent(code))
        return directory

    def copy_bundled(self, *relative: str) -> None:
        """Copy bundled plugins keeping their layout: ``core/…`` stays trusted (inline)."""
        for rel in relative:
            shutil.copytree(BUNDLED / rel, self.root / rel)


@pytest.fixture
def plugins(tmp_path: Path) -> PluginFactory:
    return PluginFactory(tmp_path / "plugins")


@pytest.fixture
def make_host(tmp_path: Path, plugins: PluginFactory) -> Callable[..., Any]:
    from plugbay.runtime.host import Host

    def make(**kwargs: Any) -> Host:
        kwargs.setdefault("state_dir", tmp_path / "state")
        kwargs.setdefault("entry_points", False)
        kwargs.setdefault("init_timeout", 2.0)
        kwargs.setdefault("cleanup_timeout", 1.0)
        # The spine's tests run their plugins inline (trusted); the sandbox's tests
        # (test_sandbox.py, test_process.py) use the default deny-by-default policy.
        kwargs.setdefault("inline", ["*"])
        return Host(kwargs.pop("plugins_dir", plugins.root), **kwargs)

    return make


@pytest.fixture
async def host(make_host: Callable[..., Any]) -> AsyncIterator[Any]:
    h = make_host()
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


@pytest.fixture(scope="session")
def ray_nodes() -> Iterator[Any]:
    """One Ray cluster (a head and two nodes, 1 CPU each) for every Ray test of the
    session (``tests/ray_support.py``); shut down by its own ``shutdown`` at the end."""
    pytest.importorskip("ray", reason="the Ray tests need plugbay[ray] ('make test' installs it)")
    from tests.ray_support import RayCluster

    cluster = RayCluster()
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def ray_cluster(ray_nodes: Any) -> Iterator[Any]:
    """The session's Ray cluster, with this process connected as its driver for one test
    module: Ray's threads leave with it (a test that forks from this process after a Ray
    module must not inherit them)."""
    ray_nodes.connect()
    try:
        yield ray_nodes
    finally:
        ray_nodes.disconnect()
