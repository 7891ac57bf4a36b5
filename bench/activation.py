"""Lazy activation and plugin events: what starting on demand saves, what an event costs.

* host start with 12 sandboxed plugins that start on demand, beside the same
  12 started eagerly (the anchor) in the same run;
* one plugin's first call (which starts it) beside a call to a running one;
* an event through two listeners (inline and sandboxed) in priority order,
  beside a command call to the same sandboxed plugin (the frames path it uses).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

from bench._report import Figure, print_figures

PLUGINS = 12

CODE = """
from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    seen = 0

    @command
    def ping(self) -> int:
        return self.seen

    @on_event("bench.tick")
    def tick(self, event: dict[str, int]) -> None:
        self.seen = event["n"]

    @command
    def emit(self, n: int) -> None:
        pass
"""

#: the inline listener, which also says when an event reached it (``until``): the bench
#: waits on that, not in a spin. A host spinning on its core while a held sandboxed
#: worker (isolation.affinity) needs that core measures the spin, not the delivery.
LAST = """
import asyncio
from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    seen = 0
    waiting = None

    @on_event("bench.tick")
    def tick(self, event: dict[str, int]) -> None:
        self.seen = event["n"]
        if self.waiting is not None and self.seen >= self.waiting[0]:
            self.waiting[1].set_result(None)
            self.waiting = None

    @command
    async def until(self, n: int) -> int:
        if self.seen < n:
            self.waiting = (n, asyncio.get_running_loop().create_future())
            await self.waiting[1]
        return self.seen
"""

SENDER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def tick(self, n: int) -> int:
        return await self.context.events.emit("bench.tick", {"n": n})
"""


def _plugins(root: Path, activation: str) -> None:
    for i in range(PLUGINS):
        d = root / f"p{i}"
        d.mkdir(parents=True)
        (d / "plugin.toml").write_text(
            f'id = "bench.p{i}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
            f'activation = "{activation}"\n[events.listens."bench.tick"]\npriority = {i}\n'
        )
        (d / "main.py").write_text(textwrap.dedent(CODE))
    sender = root / "sender"
    sender.mkdir()
    (sender / "plugin.toml").write_text(
        'id = "bench.sender"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
        '[events]\nemits = ["bench.tick"]\n'
    )
    (sender / "main.py").write_text(textwrap.dedent(SENDER))


async def _start(root: Path, state: Path) -> tuple[float, object]:
    from plugbay.runtime.host import Host

    host = Host(root, state_dir=state, entry_points=False, init_timeout=60, inline=["bench.sender"])
    started = time.perf_counter()
    await host.start()
    return time.perf_counter() - started, host


async def _measure(work: Path) -> list[Figure]:
    from plugbay.runtime.host import Host

    starts: dict[str, list[float]] = {"eager": [], "on-call": []}
    first_calls: list[float] = []
    warm_calls: list[float] = []
    for rnd in range(3):  # interleaved rounds: both see the same machine state
        for activation in ("eager", "on-call"):
            root = work / f"{activation}-{rnd}" / "plugins"
            _plugins(root, activation)
            seconds, host = await _start(root, root.parent / "state")
            assert isinstance(host, Host)
            starts[activation].append(seconds)
            if activation == "on-call":
                t = time.perf_counter()
                await host.call("bench.p0", "ping")
                first_calls.append(time.perf_counter() - t)
                t = time.perf_counter()
                for _ in range(100):
                    await host.call("bench.p0", "ping")
                warm_calls.append((time.perf_counter() - t) / 100)
            await host.stop()
    event_t, call_t = await _event_vs_call(work)
    eager, lazy = min(starts["eager"]), min(starts["on-call"])
    return [
        Figure(
            f"host start, {PLUGINS} sandboxed plugins on demand (activation = on-call)",
            lazy,
            f"the same {PLUGINS} started eagerly",
            eager,
            "faster than eager (ratio < 1)",
            lazy < eager,
        ),
        Figure(
            "first call of an on-demand plugin (starts its sandboxed worker)",
            min(first_calls),
            "a call to it once running",
            min(warm_calls),
            "reported: the start is paid once, by the first caller",
            None,
        ),
        Figure(
            "an event through an inline and a sandboxed listener, in priority order",
            event_t,
            "a command call to the sandboxed listener",
            call_t,
            "within 3× of one call per listener (the sandboxed delivery is a call)",
            event_t < 3 * call_t,
        ),
    ]


async def _event_vs_call(work: Path) -> tuple[float, float]:
    """Per event (both listeners done) and per call, best of interleaved batches."""
    from plugbay.runtime.host import Host

    root = work / "events" / "plugins"
    for name, inline in (("a", True), ("b", False)):
        d = root / name
        d.mkdir(parents=True)
        (d / "plugin.toml").write_text(
            f'id = "bench.{name}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
            f'[events.listens."bench.tick"]\npriority = {0 if not inline else 1}\n'
        )
        (d / "main.py").write_text(textwrap.dedent(LAST if inline else CODE))
    sender = root / "sender"
    sender.mkdir()
    (sender / "plugin.toml").write_text(
        'id = "bench.sender"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
        '[events]\nemits = ["bench.tick"]\n'
    )
    (sender / "main.py").write_text(textwrap.dedent(SENDER))
    async with Host(
        root,
        state_dir=root.parent / "state",
        entry_points=False,
        inline=["bench.a", "bench.sender"],
    ) as host:
        events = host.manager.plugin_events
        best_event = best_call = float("inf")
        n = 0
        for _ in range(5):
            batch = 50
            t = time.perf_counter()
            for _ in range(batch):
                n += 1
                await events.publish("bench.tick", {"n": n})
            assert await host.call("bench.a", "until", n=n) == n  # the last listener has it
            best_event = min(best_event, (time.perf_counter() - t) / batch)
            t = time.perf_counter()
            for _ in range(batch):
                await host.call("bench.b", "emit", n=1)
            best_call = min(best_call, (time.perf_counter() - t) / batch)
    return best_event, best_call


def run() -> int:
    work = Path(tempfile.mkdtemp(prefix="plugbay-bench-activation-"))
    try:
        figures = asyncio.run(_measure(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_figures("activation and events (issue 16: lazy plugins, plugin events)", figures)
    return sum(1 for f in figures if f.passed is False)


if __name__ == "__main__":
    raise SystemExit(run())
