"""Plugins start side by side, each once what it needs is up (runtime/startup.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugbay.model.resolve import ResolutionPlan
from plugbay.runtime.startup import start_plan
from tests.conftest import PluginFactory

# Each waits, in initialize, until the other has begun its own: started one after the
# other, the first would give up (RuntimeError) and fail.
MEET = """
import asyncio
from pathlib import Path
from plugbay import PluginContext, UtilityPlugin, command

RENDEZVOUS = Path({rendezvous!r})

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        (RENDEZVOUS / "{me}.begun").touch()
        for _ in range(400):
            if (RENDEZVOUS / "{other}.begun").exists():
                (RENDEZVOUS / "{me}.done").touch()
                return
            await asyncio.sleep(0.005)
        raise RuntimeError("{other} never began while {me} was starting")

    @command
    def ping(self) -> str:
        return "{me}"
"""

# Starts only after both are done: its initialize finds their marks.
AFTER = """
from pathlib import Path
from plugbay import PluginContext, UtilityPlugin, command

RENDEZVOUS = Path({rendezvous!r})

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        missing = [p for p in ("acme.a", "acme.b") if not (RENDEZVOUS / f"{{p}}.done").exists()]
        if missing:
            raise RuntimeError(f"started before {{missing}} finished starting")

    @command
    def ping(self) -> str:
        return "after"
"""


async def test_independent_plugins_start_together_and_a_dependent_after_both(
    plugins: PluginFactory, make_host: Callable[..., Any], tmp_path: Path
) -> None:
    meet = tmp_path / "rendezvous"
    meet.mkdir()
    plugins("acme.a", MEET.format(rendezvous=str(meet), me="acme.a", other="acme.b"))
    plugins("acme.b", MEET.format(rendezvous=str(meet), me="acme.b", other="acme.a"))
    plugins(
        "acme.after",
        AFTER.format(rendezvous=str(meet)),
        extra='[dependencies]\n"acme.a" = "^1"\n"acme.b" = "^1"\n',
    )
    host = make_host(init_timeout=10.0)
    async with host:
        states = {r.id: (str(r.state), r.reason) for r in host.plugins()}
        assert states == {
            "acme.a": ("active", None),
            "acme.b": ("active", None),
            "acme.after": ("active", None),
        }
        assert await host.call("acme.after", "ping") == "after"


async def test_a_plugin_whose_dependency_failed_is_refused_with_the_reason(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins(
        "acme.broken",
        "from plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        "    def __init__(self) -> None:\n        raise ValueError('no')\n",
    )
    plugins("acme.needs", extra='[dependencies]\n"acme.broken" = "^1"\n')
    plugins("acme.alone")
    async with make_host() as host:
        assert str(host.plugin("acme.broken").state) == "failed"
        needs = host.plugin("acme.needs")
        assert str(needs.state) == "failed"
        assert "acme.broken" in (needs.reason or "")
        assert await host.call("acme.alone", "ping") == "pong from acme.alone 1.0.0"


async def test_a_plugin_whose_optional_dependency_failed_starts_without_it_and_says_so(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    """docs/manifest.md: an optional dependency is "started first when present and
    compatible, otherwise skipped with a note"; one that failed is skipped too. A plugin
    that requires the failed plugin's service is another matter: it still waits for it."""
    plugins(
        "acme.broken",
        "from plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        "    def __init__(self) -> None:\n        raise ValueError('no')\n",
        extra='[services]\nprovides = { chat = "1.0.0" }\n',
    )
    plugins("acme.uses", extra='[optional-dependencies]\n"acme.broken" = "^1"\n')
    plugins(
        "acme.talks",
        extra='[optional-dependencies]\n"acme.broken" = "^1"\n'
        '[services]\nrequires = { chat = "^1" }\n',
    )
    async with make_host() as host:
        assert str(host.plugin("acme.broken").state) == "failed"
        uses = host.plugin("acme.uses")
        assert str(uses.state) == "active", uses.reason
        assert uses.notes == [
            "optional dependency 'acme.broken' skipped: it is failed "
            "('plugbay info acme.broken' says why)"
        ]
        assert "acme.broken" not in uses.needs
        assert await host.call("acme.uses", "ping") == "pong from acme.uses 1.0.0"
        talks = host.plugin("acme.talks")
        assert str(talks.state) == "failed"
        assert "not started because a dependency is not active: 'acme.broken'" in (
            talks.reason or ""
        )


async def test_nothing_starts_once_a_stop_is_asked_for() -> None:
    plan = ResolutionPlan(
        selected={},  # start() below never reads it
        order=["a", "b", "c"],
        edges={"b": frozenset({"a"}), "c": frozenset({"b"})},
    )
    started: list[str] = []
    stopping = False

    async def start(plugin_id: str) -> None:
        nonlocal stopping
        started.append(plugin_id)
        stopping = plugin_id == "a"  # SIGTERM while the first one starts

    await start_plan(plan, start, lambda: stopping)
    assert started == ["a"]


async def test_of_the_plugins_ready_together_the_one_a_chain_waits_on_begins_first() -> None:
    # plugbay run's bundled set: the sandboxed formatters → processor → irc chain is the
    # longest wait; inline core plugins that nothing waits on hold the loop as they import
    plan = ResolutionPlan(
        selected={},
        order=["logging", "monitoring", "security", "formatters", "processor", "irc"],
        edges={
            "monitoring": frozenset({"logging"}),
            "security": frozenset({"logging"}),
            "formatters": frozenset({"logging"}),
            "processor": frozenset({"logging", "formatters"}),
            "irc": frozenset({"logging", "processor"}),
        },
    )
    began: list[str] = []
    done: set[str] = set()

    async def start(plugin_id: str) -> None:
        assert plan.edges.get(plugin_id, frozenset()) <= done, plugin_id  # needs first
        began.append(plugin_id)
        await asyncio.sleep(0)
        done.add(plugin_id)

    await start_plan(plan, start, lambda: False)
    assert began[:2] == ["logging", "formatters"]
    assert sorted(began) == sorted(plan.order)
    # among plugins no chain waits on, load order holds
    assert began.index("monitoring") < began.index("security")


# --------------------------------------------------------------------------- storage ahead

STORAGE = """
[resources]
storage = "8MiB"
"""


def _mounted_at(path: Path) -> bool:
    from plugbay.isolation import quota

    return quota.mount_source(path) is not None


async def test_an_image_mounted_ahead_goes_with_its_plugin(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """The image of a plugin that waited (mounted while its dependency started) is its
    own once it runs: unloading it unmounts it, as for any other plugin."""
    from plugbay.runtime.host import Host
    from tests._waiting import until

    plugins("acme.base")
    plugins("acme.kept", extra=STORAGE + '\n[dependencies]\n"acme.base" = "^1.0"\n')
    state = tmp_path / "state"
    data_dir = state / "data" / "acme.kept"
    async with Host(plugins.root, state_dir=state, entry_points=False) as host:
        assert await host.call("acme.kept", "ping") == "pong from acme.kept 1.0.0"
        assert _mounted_at(data_dir)
        await host.unload("acme.kept")
        await until(lambda: not _mounted_at(data_dir), "the image to be unmounted")
    assert not _mounted_at(data_dir)


async def test_an_image_mounted_ahead_for_a_plugin_that_cannot_start_is_unmounted(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """Its worker, forked ahead once the dependency's had been, is stopped (it never ran
    any of the plugin's code) and the image unmounted, while the host runs on."""
    from plugbay.runtime.host import Host
    from tests._waiting import until

    plugins("acme.broken", "raise RuntimeError('boom')\n")
    plugins("acme.kept", extra=STORAGE + '\n[dependencies]\n"acme.broken" = "^1.0"\n')
    plugins("acme.other")
    state = tmp_path / "state"
    data_dir = state / "data" / "acme.kept"
    async with Host(plugins.root, state_dir=state, entry_points=False) as host:
        assert str(host.plugin("acme.kept").state) == "failed"
        assert host.plugin("acme.kept").handle is None
        await until(lambda: not _mounted_at(data_dir), "the image to be unmounted")
        assert await host.call("acme.other", "ping") == "pong from acme.other 1.0.0"


# --------------------------------------------------------------------------- workers ahead

# Trusted (inline, in the host's process): while it initializes, it watches for the
# host's grandchildren, the workers its zygote forks.
GATE = """
import asyncio, os
from pathlib import Path
from plugbay import PluginContext, UtilityPlugin, command

def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found

# the host's zygotes among its children: the test process has others (a Ray cluster's,
# say), whose own children are not this host's workers
def _zygotes(pid: int) -> set[int]:
    found = set()
    for child in _children(pid):
        try:
            if b"zygote" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(child)
        except OSError:  # it ended meanwhile
            continue
    return found

class P(UtilityPlugin):
    seen: list[int] = []

    async def initialize(self, context: PluginContext) -> None:
        for _ in range(800):  # a hang guard, inside its 10 s initialize timeout
            workers = set().union(*(_children(z) for z in _zygotes(os.getpid())))
            if workers:
                P.seen = sorted(workers)
                return
            await asyncio.sleep(0.01)

    @command
    def seen_while_starting(self) -> list[int]:
        return P.seen
"""


async def test_a_waiting_plugins_worker_is_forked_while_what_it_needs_starts(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """acme.after needs acme.gate: its worker is forked (and confined) while acme.gate
    is still initializing, and it is that worker which then runs acme.after."""
    from plugbay.runtime.host import Host

    plugins("acme.gate", GATE, dirname="core/acme.gate")
    plugins("acme.after", extra='[dependencies]\n"acme.gate" = "^1.0"\n')
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        assert host.plugin("acme.gate").isolation == "inline"
        assert await host.call("acme.after", "ping") == "pong from acme.after 1.0.0"
        handle = host.plugin("acme.after").handle
        assert handle is not None and handle.isolated
        seen = await host.call("acme.gate", "seen_while_starting")
        assert seen == [handle.pid]  # type: ignore[attr-defined]
