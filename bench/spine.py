"""The spine's figures: inline call overhead, discovery + resolution at scale, start-up."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pluggy

from bench._report import Figure, print_figures, timed

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"

#: The inline call and discovery figures are CPU work on one thread, timed by that
#: thread's CPU clock (user + system), anchors and figures alike: on a shared machine a
#: wall-clock round also counts the time the process waited for a core, which at a load
#: of 10-20 on 2 cores no round escapes (the same run gave 0.64x and 1.30x for two
#: figures that differ by one function frame).
_cpu = time.thread_time

ECHO_PLUGIN = """
from plugbay import UtilityPlugin, command

class Echo(UtilityPlugin):
    @command
    def echo(self, x: int) -> int:
        return x

    @command
    async def echo_async(self, x: int) -> int:
        return x

    @command
    async def echo_awaits(self, x: int) -> int:
        return await self._same(x)  # awaits, and is never suspended

    async def _same(self, x: int) -> int:
        return x
"""


# --------------------------------------------------------------------------- call overhead


def call_overhead() -> list[Figure]:
    from plugbay.runtime.host import Host

    n = 50_000
    directory = WORK / "echo-plugins" / "echo"
    shutil.rmtree(directory.parent, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "plugin.toml").write_text(
        'id = "bench.echo"\nversion = "1.0.0"\ntype = "utility"\nentry = "echo:Echo"\n'
    )
    (directory / "echo.py").write_text(ECHO_PLUGIN)

    # anchors: a plain method call and a pluggy hook call with one implementation
    class Plain:
        def echo(self, x: int) -> int:
            return x

    plain = Plain()

    def plain_run() -> float:
        f = plain.echo
        start = _cpu()
        for i in range(n):
            f(x=i)
        return (_cpu() - start) / n

    hookspec = pluggy.HookspecMarker("bench")
    hookimpl = pluggy.HookimplMarker("bench")

    class Spec:
        @hookspec
        def echo(self, x: int) -> list[int]: ...

    class Impl:
        @hookimpl
        def echo(self, x: int) -> int:
            return x

    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(Spec)
    pm.register(Impl())

    def pluggy_run() -> float:
        hook = pm.hook.echo
        start = _cpu()
        for i in range(n):
            hook(x=i)
        return (_cpu() - start) / n

    results: dict[str, float] = {}

    async def plugbay_runs() -> None:
        # trusted: the inline call path is what this measures (untrusted would be a worker)
        async with Host(
            directory.parent, state_dir=None, entry_points=False, inline=["bench.echo"]
        ) as host:
            rec = host.plugin("bench.echo")
            assert rec.handle is not None and rec.handle.instance is not None
            proxy = host.get(type(rec.handle.instance))

            async def host_call() -> float:
                call = host.call
                start = _cpu()
                for i in range(n):
                    await call("bench.echo", "echo", x=i)
                return (_cpu() - start) / n

            async def proxy_call() -> float:
                echo = proxy.echo
                start = _cpu()
                for i in range(n):
                    await echo(x=i)
                return (_cpu() - start) / n

            async def proxy_async_call() -> float:
                echo = proxy.echo_async
                start = _cpu()
                for i in range(n):
                    await echo(x=i)
                return (_cpu() - start) / n

            async def proxy_awaits_call() -> float:
                echo = proxy.echo_awaits
                start = _cpu()
                for i in range(n):
                    await echo(x=i)
                return (_cpu() - start) / n

            async def sync(fn: Callable[[], float]) -> float:
                return fn()

            # interleaved rounds: every figure and its anchors see the same machine state
            runs: dict[str, list[float]] = {}
            for _ in range(7):
                for name, measure in (
                    ("plain", lambda: sync(plain_run)),
                    ("pluggy", lambda: sync(pluggy_run)),
                    ("host", host_call),
                    ("proxy", proxy_call),
                    ("proxy_async", proxy_async_call),
                    ("proxy_awaits", proxy_awaits_call),
                ):
                    runs.setdefault(name, []).append(await measure())
            results.update({name: min(values) for name, values in runs.items()})

    asyncio.run(plugbay_runs())
    plain_t, pluggy_t = results["plain"], results["pluggy"]
    return [
        Figure(
            "typed proxy call (def command, inline)",
            results["proxy"],
            "pluggy hook call (1 impl)",
            pluggy_t,
            "≤ 1.0× pluggy",
            results["proxy"] <= pluggy_t,
        ),
        Figure(
            "typed proxy call (async def command, inline)",
            results["proxy_async"],
            "pluggy hook call (1 impl)",
            pluggy_t,
            "≤ 1.0× pluggy",
            results["proxy_async"] <= pluggy_t,
        ),
        Figure(
            "typed proxy call (async def command that awaits, inline)",
            results["proxy_awaits"],
            "pluggy hook call (1 impl)",
            pluggy_t,
            "(reported: a command that can suspend runs its first step by hand, the "
            "timer armed only if it does suspend)",
            None,
        ),
        Figure(
            "await host.call(id, command, **params)",
            results["host"],
            "pluggy hook call (1 impl)",
            pluggy_t,
            "≤ 1.0× pluggy",
            results["host"] <= pluggy_t,
        ),
        Figure(
            "typed proxy call (def command, inline)",
            results["proxy"],
            "plain Python method call",
            plain_t,
            "(reported: the price of checks, timeout, metrics)",
            None,
        ),
    ]


# --------------------------------------------------------------------------- discovery + resolution


def generate_manifests(root: Path, plugins: int = 1000, versions: int = 3, seed: int = 7) -> int:
    """``plugins`` ids × ``versions`` each; dependency chains at least 5 deep; ranges
    drawn from caret, tilde, comparator and PEP 440 forms over versions that exist."""
    rng = random.Random(seed)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    count = 0
    layers = 8
    per_layer = plugins // layers
    ids = [f"gen.l{i // per_layer}.p{i}" for i in range(plugins)]
    vers = [(1, 0, 0), (1, 2, 0), (2, 0, 0)][:versions]
    for index, pid in enumerate(ids):
        layer = index // per_layer
        lower = ids[: layer * per_layer] if layer else []
        for major, minor, patch in vers:
            deps = {}
            if lower:
                # always one dependency on the layer just below, so chains are `layers` deep
                below = ids[(layer - 1) * per_layer : layer * per_layer]
                picks = {rng.choice(below)} | {rng.choice(lower) for _ in range(rng.randint(0, 3))}
                for dep in sorted(picks):
                    form = rng.randrange(5)
                    deps[dep] = [">=1.0.0", "^1.0", "~1.2", ">=1, <3", "*"][form]
            lines = [
                f'id = "{pid}"',
                f'version = "{major}.{minor}.{patch}"',
                'type = "utility"',
                'entry = "m:P"',
                'host = ">=0.1.0 <1.0.0"',
                "",
                "[dependencies]",
            ] + [f'"{d}" = "{r}"' for d, r in deps.items()]
            directory = root / f"{pid}-{major}.{minor}.{patch}"
            directory.mkdir()
            (directory / "plugin.toml").write_text("\n".join(lines) + "\n")
            count += 1
    return count


#: the discovery figure is printed at each size (plugins, 3 versions each); the goal is
#: the issue's, at 1,000 (at 10 the fixed costs weigh most: reported)
DISCOVERY_SIZES: tuple[int, ...] = (10, 100, 1000)
GOAL_AT: int = 1000


def discovery_resolution() -> list[Figure]:
    figures: list[Figure] = []
    for plugins in DISCOVERY_SIZES:
        figures += _discovery_at(plugins, warm=plugins == GOAL_AT)
    return figures


def _discovery_at(plugins: int, *, warm: bool) -> list[Figure]:
    """Cold (and, if ``warm``, cached) discover + resolve of ``plugins`` × 3 versions,
    beside ``tomllib`` parsing the same files, in interleaved rounds."""
    from plugbay.model.discover import manifest_files
    from plugbay.model.manifest_cache import RACY_NS

    root = WORK / f"manifests-{plugins}"
    count = generate_manifests(root, plugins)
    files = [Path(f) for f in manifest_files(root)]
    assert len(files) == count
    cache_file = WORK / "manifest-cache" / f"manifests-{plugins}.cache"
    cache_file.unlink(missing_ok=True)
    if warm:
        # the cache takes no file changed in the last RACY_NS (a same-tick edit could
        # hide): these were all just written, so wait that out, as any earlier-written
        # plugin has
        time.sleep(RACY_NS / 1e9 + 0.1)

    def anchor() -> float:
        start = _cpu()
        [tomllib.loads(f.read_text()) for f in files]
        return _cpu() - start

    # small sizes take microseconds a round: more rounds, the same interleaving
    rounds = 3 if plugins >= 1000 else 15
    if warm:
        _discover_resolve(root, plugins, cache_file)  # the first start writes the cache
    anchors: list[float] = []
    cold: list[float] = []
    cached: list[float] = []
    depth = hits = 0
    for _ in range(rounds):
        anchors.append(anchor())
        elapsed, depth, _ = _discover_resolve(root, plugins, None)
        cold.append(elapsed)
        if warm:
            elapsed, depth, hits = _discover_resolve(root, plugins, cache_file)
            cached.append(elapsed)
    anchor_t, cold_t = min(anchors), min(cold)
    what = f"{count} manifests ({plugins} plugins × 3 versions, depth {depth})"
    anchor_name = f"tomllib parse of the same {count} files"
    figures = []
    if warm:
        assert hits == count, f"the warm run read {count - hits} manifests"
        warm_t = min(cached)
        figures.append(
            Figure(
                f"discover + resolve {what}, manifest cache warm (a restart)",
                warm_t,
                anchor_name,
                anchor_t,
                "≤ 1.5× tomllib",
                warm_t <= 1.5 * anchor_t,
                note=f"median of {rounds}: {statistics.median(cached) * 1000:.1f} ms; "
                f"every manifest still validated, each file stat-ed",
            )
        )
    judged = plugins == GOAL_AT
    figures.append(
        Figure(
            f"discover + resolve {what}, cold (no cache: first start, or cache lost)",
            cold_t,
            anchor_name,
            anchor_t,
            "≤ 1.5× tomllib" if judged else "(reported; the goal, ≤ 1.5×, is at 1,000 plugins)",
            cold_t <= 1.5 * anchor_t if judged else None,
            note=f"median of {rounds}: {statistics.median(cold) * 1000:.1f} ms",
        )
    )
    return figures


def _discover_resolve(root: Path, plugins: int, cache_file: Path | None) -> tuple[float, int, int]:
    """CPU seconds to discover and resolve everything below ``root`` (with the manifest
    cache at ``cache_file``, or none), the plan's depth, and the manifests the cache served."""
    from plugbay.model import versions as v
    from plugbay.model.discover import discover_directory
    from plugbay.model.manifest_cache import ManifestCache
    from plugbay.model.registry import PluginRegistry
    from plugbay.model.versions import Version

    # cold caches each run: the parse caches would otherwise make reruns free
    for fn in vars(v).values():
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()
    start = _cpu()
    cache = ManifestCache(cache_file) if cache_file is not None else None
    found = discover_directory(root, cache=cache)
    registry = PluginRegistry(Version.parse("0.1.0"))
    for m in found.manifests:
        registry.register(m)
    plan = registry.resolve_all()
    if cache is not None:
        cache.save()
    elapsed = _cpu() - start
    assert not found.problems and not plan.failures, (
        found.problems[:3],
        list(plan.failures.items())[:3],
    )
    assert len(plan.selected) == plugins
    return elapsed, _depth(plan.edges), cache.hits if cache is not None else 0


def _depth(edges: dict[str, frozenset[str]]) -> int:
    memo: dict[str, int] = {}

    def d(n: str) -> int:
        if n not in memo:
            memo[n] = 1 + max((d(m) for m in edges.get(n, ())), default=0)
        return memo[n]

    return max((d(n) for n in edges), default=0)


# --------------------------------------------------------------------------- start-up


def _warm_bytecode() -> None:
    """Both sides of the start-up figure run from compiled modules, as an installed
    package does (an environment with PYTHONDONTWRITEBYTECODE never writes them, and
    would measure the compiler)."""
    import compileall

    for tree in (ROOT / "src", ROOT / "plugins"):
        compileall.compile_dir(tree, quiet=1)


def startup() -> list[Figure]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    plugbay = [sys.executable, "-m", "plugbay.cli"]
    _warm_bytecode()

    def import_only() -> float:
        return timed(
            lambda: subprocess.run([sys.executable, "-c", "import plugbay"], check=True, env=env)
        )

    # the repository's host config (it trusts the bundled gateway, as `make run` does),
    # with the gateway on a free port: the bench runs beside `make run` and other hosts,
    # one of which may hold its default 7878 (then "a bundled plugin failed")
    config = WORK / "startup-plugbay.toml"
    WORK.mkdir(parents=True, exist_ok=True)
    config.write_text(
        (ROOT / "plugbay.toml").read_text() + '\n[plugins."integration.protocol"]\nport = 0\n'
    )

    def run_until_ready() -> tuple[float, float]:
        """Seconds until every bundled plugin is active, and until it serves."""
        state = WORK / "startup-state"
        shutil.rmtree(state, ignore_errors=True)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [
                *plugbay,
                "run",
                "--plugins",
                str(ROOT / "plugins"),
                "--state",
                str(state),
                "--config",
                str(config),
                # free ports: the bench runs beside `make run` (127.0.0.1:8750)
                "--http",
                "127.0.0.1:0",
                "--metrics-port",
                "0",
            ],
            cwd=WORK,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        active = ready = None
        for line in proc.stdout:
            if "active" in line and "failed" in line and "ready in" in line:
                if " 0 failed" not in line:
                    raise RuntimeError(f"a bundled plugin failed: {line}")
                active = time.perf_counter() - start
            if "serving" in line:
                ready = time.perf_counter() - start
                break
        proc.terminate()
        proc.wait(timeout=30)
        if ready is None or active is None:
            raise RuntimeError("plugbay run never said it was serving")
        return active, ready

    WORK.mkdir(parents=True, exist_ok=True)
    # interleaved: the anchor and the figure see the same machine
    imports: list[float] = []
    runs: list[tuple[float, float]] = []
    for _ in range(5):
        imports.append(import_only())
        runs.append(run_until_ready())
    anchor_t = min(imports)
    active_t = min(a for a, _ in runs)
    serving_t = min(r for _, r in runs)
    median_active = statistics.median(a for a, _ in runs)
    return [
        Figure(
            "`plugbay run` start → all bundled plugins active",
            active_t,
            "python -c 'import plugbay'",
            anchor_t,
            "≤ 5× the anchor and under 0.5 s",
            active_t <= 5 * anchor_t and active_t < 0.5,
            note=f"median of 5: {median_active * 1000:.0f} ms; serving (API, /metrics) after "
            f"{serving_t * 1000:.0f} ms",
        ),
    ]


def run() -> int:
    figures = call_overhead() + discovery_resolution() + startup()
    print_figures("spine (issue: typed API, manifests, resolution, lifecycle, CLI)", figures)
    return sum(1 for f in figures if f.passed is False)
