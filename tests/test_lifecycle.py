"""A host's life around its plugins (plugbay.runtime.lifecycle, plugbay run): one host
per state directory, a start that sweeps what a dead host left, health from the first
second, a SIGTERM at any point that drains and leaves nothing behind, a start cancelled
or failing at any point that undoes itself, descriptors.

Real ``plugbay run`` processes, real workers and cgroups; each test its own state
directory and free ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from plugbay.isolation import _cgroups, quota
from plugbay.runtime.host import Host, HostLockedError
from tests._waiting import until
from tests.conftest import PluginFactory

SLOW_INIT = """
import asyncio
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context) -> None:
        await super().initialize(context)
        await asyncio.sleep({seconds})

    @command
    def ping(self) -> str:
        return "pong"

    @command
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"
"""


def worker_cgroups(owner: int) -> set[str]:
    """Names of the worker cgroups a host (by pid) owns now, in any hierarchy."""
    try:
        groups = _cgroups.discover()
    except _cgroups.CgroupUnavailable:
        return set()
    found: set[str] = set()
    for _c, directory in groups.parents:
        base = Path(directory) / _cgroups.BASE
        if base.is_dir():
            found |= {
                p.name for p in base.iterdir() if p.is_dir() and _cgroups.owner_of(p.name) == owner
            }
    return found


def cgroups_available() -> bool:
    try:
        _cgroups.discover()
    except _cgroups.CgroupUnavailable:
        return False
    return True


@dataclass
class Run:
    """A ``plugbay run`` process, its output in files (read at any time, never blocking)."""

    proc: subprocess.Popen[bytes]
    state: Path
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def announced(self) -> dict[str, Any]:
        try:
            data = json.loads((self.state / "host.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def url(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            url = self.announced().get("http")
            if url:
                return str(url)
            assert self.proc.poll() is None, self.stdout() + self.stderr()
            time.sleep(0.01)
        raise AssertionError("no API announced: " + self.stdout() + self.stderr())

    def token(self) -> str:
        return (self.state / "api-token").read_text().strip()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stdout():
            assert time.monotonic() < deadline, f"no {text!r}: {self.stdout()}{self.stderr()}"
            assert self.proc.poll() is None, self.stdout() + self.stderr()
            time.sleep(0.01)

    def workers(self) -> list[psutil.Process]:
        """Every process below the host (zygote, workers)."""
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


@pytest.fixture
def run_host(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    started: list[Run] = []

    def start(plugins: Path, *args: str, state: Path | None = None) -> Run:
        n = len(started)
        state = state or tmp_path / "state"
        out, err = tmp_path / f"out-{n}.txt", tmp_path / f"err-{n}.txt"
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                [sys.executable, "-m", "plugbay.cli", "run", "--plugins", str(plugins),
                 "--state", str(state), "--http", "127.0.0.1:0", "--no-metrics", *args],
                cwd=tmp_path, stdout=o, stderr=e, env=env,
            )  # fmt: skip
        run = Run(proc, state, out, err)
        started.append(run)
        return run

    yield start
    for run in started:  # only the processes this test started, by pid
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(timeout=30)


def sandboxed(plugins: PluginFactory, count: int, *, init_seconds: float = 0.0) -> None:
    for n in range(count):
        plugins(f"acme.p{n}", textwrap.dedent(SLOW_INIT.format(seconds=init_seconds)))


# ---------------------------------------------------------------------- one host


async def test_a_second_host_on_the_same_state_directory_is_refused(
    make_host: Callable[..., Host], plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.one")
    async with make_host() as first:
        second = make_host()
        with pytest.raises(HostLockedError, match=f"pid {os.getpid()}") as caught:
            await second.start()
        assert "another host already serves this state directory" in str(caught.value)
        assert not second.started
        assert await first.call("acme.one", "ping") == "pong from acme.one 1.0.0"
    # once the first stopped, the directory is free again
    async with make_host() as third:
        assert str(third.plugin("acme.one").state) == "active"


async def test_an_application_catches_a_second_host_with_the_error_plugbay_exports(
    make_host: Callable[..., Host], plugins: PluginFactory
) -> None:
    """What docs/applications.md shows: ``from plugbay import HostLockedError``, no private
    module, and a second ``Host`` on the same state directory is caught by it."""
    from plugbay import HostLockedError as Exported
    from plugbay import PlugbayError

    plugins("acme.one")
    async with make_host() as first:
        try:
            async with make_host():
                raise AssertionError("a second host on the same state directory started")
        except Exported as exc:
            refused = exc
        assert isinstance(refused, PlugbayError) and refused.code == "host_locked"
        assert refused.details["pid"] == os.getpid()
        assert await first.call("acme.one", "ping") == "pong from acme.one 1.0.0"


@pytest.mark.slow
def test_a_second_plugbay_run_is_refused_naming_the_holder_and_the_cli_talks_to_it(
    plugins: PluginFactory, run_host: Callable[..., Run]
) -> None:
    plugins("acme.one")
    first = run_host(plugins.root)
    url = first.url()
    first.wait_for("serving")
    second = run_host(plugins.root)
    assert second.proc.wait(timeout=60) != 0
    said = second.stdout() + second.stderr()
    assert f"pid {first.proc.pid}" in said and url in said, said
    assert "Traceback" not in said
    # a CLI command on the same state directory asks the holder
    listed = subprocess.run(
        [sys.executable, "-m", "plugbay.cli", "list", "--state", str(first.state), "--json"],
        capture_output=True, text=True, timeout=60, cwd=first.state.parent,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["state"], r["source"]) for r in rows] == [
        ("acme.one", "active", f"host pid {first.proc.pid}")
    ]
    health = subprocess.run(
        [sys.executable, "-m", "plugbay.cli", "health", "--state", str(first.state), "--json"],
        capture_output=True, text=True, timeout=60, cwd=first.state.parent,
    )  # fmt: skip
    assert health.returncode == 0, health.stderr
    readiness = json.loads(health.stdout)["readiness"]
    assert (readiness["status"], readiness["active"], readiness["wanted"]) == ("ready", 1, 1)
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=60) == 0


# ---------------------------------------------------------------------- a start cut short


def quota_chain(plugins: PluginFactory, *, init_seconds: float) -> None:
    """acme.p0 <- acme.p1 <- acme.p2, sandboxed, each with a storage image: while p0
    initializes, the images of all three are mounted and p1's and p2's workers forked
    ahead (``runtime.startup.StartAhead``)."""
    for n in range(3):
        needs = f'[dependencies]\n"acme.p{n - 1}" = "^1.0"\n' if n else ""
        plugins(
            f"acme.p{n}",
            textwrap.dedent(SLOW_INIT.format(seconds=init_seconds if n == 0 else 0)),
            extra=f'[resources]\nstorage = "2MiB"\n{needs}',
        )


def mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mounts") as mounts:
        return [f[1] for line in mounts if (f := line.split())[1].startswith(str(root))]


def below_us() -> dict[int, psutil.Process]:
    """The processes a host starts below this test's: its zygote with the workers it
    forked, and the storage images' janitor (not a Ray cluster another test started)."""
    found: dict[int, psutil.Process] = {}
    for child in psutil.Process().children():
        try:
            if any(mark in " ".join(child.cmdline()) for mark in ("zygote_main", "umount")):
                found |= {p.pid: p for p in [child, *child.children(recursive=True)]}
        except psutil.Error:  # exited meanwhile
            continue
    return found


def zygote_children(host: Host) -> int:
    pid = host.manager.backends["process"].zygote.pid  # type: ignore[attr-defined]
    try:
        return len(psutil.Process(pid).children()) if pid is not None else 0
    except psutil.NoSuchProcess:
        return 0


#: where the start is when it is cancelled: ``None``, before it begins
CUT_AT: dict[str, Callable[[Host, Path], bool] | None] = {
    "at once": None,
    "the state open": lambda host, _root: host.phase == "starting",
    "the zygote booting": lambda host, _root: (
        host.manager.backends["process"].zygote.pid is not None  # type: ignore[attr-defined]
    ),
    "an image mounted": lambda _host, root: bool(mounts_under(root)),
    "the chain's workers forked": lambda host, _root: zygote_children(host) == 3,
}


async def nothing_left(
    host: Host, root: Path, before: set[int], seen: list[psutil.Process], make_host: Any
) -> None:
    """What a start cut short must leave: nothing of it, and its state directory free."""
    assert sorted(set(below_us()) - before) == []  # zygote, workers, janitor: all gone
    _gone, alive = await asyncio.to_thread(psutil.wait_procs, seen, 30)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    assert mounts_under(root) == []
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    # another host in this process takes the state directory and serves
    quick = PluginFactory(root / "quick")
    quick("acme.quick")
    async with make_host(plugins_dir=quick.root, inline=[], init_timeout=20) as again:
        assert await again.call("acme.quick", "ping") == "pong from acme.quick 1.0.0"
    assert (host.started, host.phase, host.state) == (False, "stopped", None)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(CUT_AT))
async def test_a_start_cancelled_at_any_point_undoes_itself_and_frees_the_state_directory(
    point: str,
    plugins: PluginFactory,
    make_host: Callable[..., Host],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    reached = CUT_AT[point]
    if point == "an image mounted" and not quota.probe().enforced:
        pytest.skip("no kernel-enforced storage image here: " + quota.probe().detail)
    quota_chain(plugins, init_seconds=60)
    before = set(below_us())
    host = make_host(inline=[], init_timeout=120)

    async def app() -> None:
        async with host:
            raise AssertionError("the start was to be cancelled before it finished")

    task = asyncio.create_task(app())
    seen: dict[int, psutil.Process] = {}
    if reached is not None:

        def there() -> bool:
            seen.update({pid: p for pid, p in below_us().items() if pid not in before})
            return task.done() or reached(host, tmp_path)

        await until(there, point, every=0.001)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await nothing_left(host, tmp_path, before, list(seen.values()), make_host)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.slow
async def test_a_start_that_raises_with_workers_running_undoes_itself_then_raises(
    plugins: PluginFactory,
    make_host: Callable[..., Host],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    quota_chain(plugins, init_seconds=0)
    before = set(below_us())
    host = make_host(inline=[], init_timeout=20)
    load_plan = host.manager.load_plan
    seen: dict[int, psutil.Process] = {}

    async def load_then_fail(plan: Any) -> None:  # every plugin active, then a failure
        await load_plan(plan)
        assert [str(r.state) for r in host.plugins()] == ["active"] * 3
        seen.update({pid: p for pid, p in below_us().items() if pid not in before})
        raise RuntimeError("provoked at the end of the start")

    monkeypatch.setattr(host.manager, "load_plan", load_then_fail)
    with pytest.raises(RuntimeError, match="provoked"):
        async with host:
            raise AssertionError("the start was to fail")
    assert len(seen) >= 4  # the zygote and three workers ran
    await nothing_left(host, tmp_path, before, list(seen.values()), make_host)
    assert "Traceback" not in capfd.readouterr().err


# ---------------------------------------------------------------------- leftovers


@pytest.mark.slow
@pytest.mark.skipif(not cgroups_available(), reason="no cgroup hierarchy to leave behind")
async def test_a_start_sweeps_what_a_host_killed_with_sigkill_left(
    plugins: PluginFactory, run_host: Callable[..., Run], make_host: Callable[..., Host]
) -> None:
    sandboxed(plugins, 3)
    ours_before = worker_cgroups(os.getpid())
    killed = run_host(plugins.root)
    killed.wait_for("serving")
    left = worker_cgroups(killed.proc.pid)
    assert len(left) == 3, left
    below = killed.workers()
    assert below, "the sandboxed plugins run in workers below the host"
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait(timeout=30)
    assert worker_cgroups(killed.proc.pid) == left  # the kernel keeps empty cgroups
    # the workers die with their zygote, which dies with the host
    psutil.wait_procs(below, timeout=10)
    assert not [p for p in below if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    async with make_host(state_dir=killed.state, inline=[], init_timeout=20) as host:
        assert host.swept is not None
        assert set(host.swept.cgroups) >= left
        assert host.swept.announcement  # its host.json named a dead pid
        assert worker_cgroups(killed.proc.pid) == set()
        assert all(str(r.state) == "active" for r in host.plugins())
        mine = worker_cgroups(os.getpid()) - ours_before
        assert len(mine) == 3  # this host's own workers are untouched by its sweep
    assert worker_cgroups(os.getpid()) - ours_before == set()


@pytest.mark.slow
def test_sigterm_during_startup_stops_cleanly(
    plugins: PluginFactory, run_host: Callable[..., Run]
) -> None:
    # independent plugins start side by side: each takes long enough that the host is
    # still starting when the checks below are done and the signal arrives
    sandboxed(plugins, 6, init_seconds=4.0)
    run = run_host(plugins.root)
    url = run.url()
    # /healthz answers while plugins are still starting; /readyz says so, with progress
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz", headers={"Authorization": f"Bearer {run.token()}"})
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "starting" and body["wanted"] == 6 and body["active"] < 6, body
    with httpx.Client(base_url=url, timeout=10, follow_redirects=True) as http:
        page = http.get("/", params={"token": run.token()}).text
    assert "starting: " in page and " of 6 active" in page
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0, run.stdout() + run.stderr()
    assert "during startup" in run.stdout()
    assert run.stderr().strip() == "", run.stderr()
    assert worker_cgroups(run.proc.pid) == set()
    assert run.workers() == []
    assert not (run.state / "host.json").exists()


@pytest.mark.slow
def test_sigterm_drains_calls_in_flight_answers_503_and_leaves_nothing(
    plugins: PluginFactory, run_host: Callable[..., Run]
) -> None:
    sandboxed(plugins, 2)
    run = run_host(plugins.root)
    url = run.url()
    run.wait_for("serving")
    pids = [p.pid for p in run.workers()]
    auth = {"Authorization": f"Bearer {run.token()}"}
    results: list[httpx.Response] = []

    def slow_call() -> None:
        with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
            results.append(
                http.post("/api/v1/plugins/acme.p0/commands/slow", json={"seconds": 1.5})
            )

    callers = [threading.Thread(target=slow_call) for _ in range(4)]
    for t in callers:
        t.start()
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        deadline = time.monotonic() + 10
        while 'plugbay_plugin_inflight{plugin="acme.p0"' not in (
            metrics := http.get("/metrics").text
        ) or not any(
            line.startswith('plugbay_plugin_inflight{plugin="acme.p0"') and line.endswith(" 4.0")
            for line in metrics.splitlines()
        ):
            assert time.monotonic() < deadline, "the 4 slow calls never ran"
            time.sleep(0.01)
        run.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:  # a new call meets the drain: 503, come back later
            refused = http.post("/api/v1/plugins/acme.p1/commands/ping", json={})
            if refused.status_code == 503:
                break
            assert time.monotonic() < deadline, refused.text
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["error"]["code"] == "host_stopping"
    for t in callers:
        t.join(timeout=30)
    assert [r.status_code for r in results] == [200] * 4, [r.text for r in results]
    assert all(r.json()["result"] == "done" for r in results)
    assert run.proc.wait(timeout=60) == 0
    err = run.stderr()
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert err.strip() == "", err
    assert worker_cgroups(run.proc.pid) == set()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


# ---------------------------------------------------------------------- descriptors

DESCRIPTORS = """
import asyncio, json, resource, sys
from plugbay.runtime.host import Host

async def main() -> None:
    soft, hard = int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    async with Host(sys.argv[1], state_dir=sys.argv[4], entry_points=False,
                    init_timeout=30) as host:
        out = {
            "limit": resource.getrlimit(resource.RLIMIT_NOFILE),
            "states": {r.id: str(r.state) for r in host.plugins()},
            "reasons": [r.reason for r in host.plugins() if r.reason],
            "budget": host.descriptors(),
            "answer": await host.call("acme.p0", "ping"),
        }
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.slow
def test_the_host_lifts_its_descriptor_limit_and_says_descriptors_when_short(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    sandboxed(plugins, 24)
    script = tmp_path / "descriptors.py"
    script.write_text(DESCRIPTORS)

    def run(soft: int, hard: int) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, str(script), str(plugins.root), str(soft), str(hard),
             str(tmp_path / f"state-{soft}-{hard}")],
            capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout.splitlines()[-1]))

    # a soft limit below the hard one is lifted: every plugin starts
    lifted = run(80, 1024)
    assert lifted["limit"] == [1024, 1024]
    assert set(lifted["states"].values()) == {"active"}
    assert lifted["budget"]["per_sandboxed_plugin"] >= 1
    # a hard limit too low: the plugins past it fail saying "descriptors", the rest serve
    short = run(96, 96)
    states = list(short["states"].values())
    assert "active" in states and "failed" in states, short
    assert short["answer"] == "pong"
    assert all("descriptors" in r and "96" in r for r in short["reasons"]), short["reasons"]


@pytest.mark.slow
def test_a_call_that_outlasts_the_drain_gets_an_error_not_a_reset(
    plugins: PluginFactory, run_host: Callable[..., Run]
) -> None:
    sandboxed(plugins, 1)
    run = run_host(plugins.root, "--drain", "0.2")
    url = run.url()
    run.wait_for("serving")
    auth = {"Authorization": f"Bearer {run.token()}"}
    results: list[httpx.Response | Exception] = []

    def long_call() -> None:
        with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
            try:
                results.append(
                    http.post("/api/v1/plugins/acme.p0/commands/slow", json={"seconds": 60})
                )
            except httpx.HTTPError as exc:
                results.append(exc)

    caller = threading.Thread(target=long_call)
    caller.start()
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        deadline = time.monotonic() + 10
        while not any(
            line.startswith('plugbay_plugin_inflight{plugin="acme.p0"') and line.endswith(" 1.0")
            for line in http.get("/metrics").text.splitlines()
        ):
            assert time.monotonic() < deadline, "the long call never ran"
            time.sleep(0.01)
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0
    caller.join(timeout=30)
    (answer,) = results
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code >= 500 and "error" in answer.json(), answer.text
    err = run.stderr()
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert worker_cgroups(run.proc.pid) == set()


def test_only_cgroups_of_dead_hosts_are_orphans(tmp_path: Path) -> None:
    """The sweep's rule, on a directory tree shaped like a cgroup hierarchy."""
    base = tmp_path / _cgroups.BASE
    dead = 2**22 + 12345  # above any pid_max this machine uses by default
    names = {
        f"acme.a-h{dead}-0123abcd": True,  # its host is gone
        f"acme.b-h{os.getpid()}-0123abcd": False,  # this process: alive
        f"acme.c-h{os.getppid()}-0123abcd": False,  # another live host
        "acme.d-0123abcd": False,  # no owner in the name: never taken
        f"w{dead}-89abcdef": True,  # the layer's own name for a worker
    }
    for name in names:
        (base / name).mkdir(parents=True)
    groups = _cgroups.Cgroups(2, (("unified", str(tmp_path)),))
    alive = {os.getpid(), os.getppid()}.__contains__
    assert _cgroups.orphaned(groups, alive=alive) == sorted(n for n, o in names.items() if o)
    assert _cgroups.owner_of(_cgroups.worker_name("x.y")) == os.getpid()
