"""The monitor reads many workers in turn and probes the rest cheaply (monitor/sampling.py,
monitor/tracks.py)."""

from __future__ import annotations

import os

from plugbay.monitor.sampling import SampleRota, probe
from plugbay.monitor.tracks import SWEEP_TICKS, Visits


class Worker:
    isolated = True


def test_every_worker_is_read_in_full_in_turn_and_a_called_one_first() -> None:
    rota = SampleRota()
    handles = {f"p{i}": Worker() for i in range(5)}
    for pid, handle in handles.items():
        rota.add(pid, handle)
    due = rota.due({}, handles.get)
    assert list(due) == ["p0"]  # new ones first, one a tick
    rota.measured(due)
    for _ in range(4):
        rota.measured(rota.due({}, handles.get))
    assert all(rota.known(pid, h) for pid, h in handles.items())
    measured: list[str] = []
    for _ in range(10):  # then one a tick besides the called ones
        due = rota.due({}, handles.get)
        rota.measured(due)
        measured += due
    counts = {pid: measured.count(pid) for pid in handles}
    assert set(counts.values()) == {2}  # nobody is left out, nobody favoured
    called = {"p3": handles["p3"]}
    due = rota.due(called, handles.get)
    assert next(iter(due)) == "p3" and len(due) == 2  # the called one, then the oldest
    replaced = Worker()
    assert rota.known("p0", handles["p0"]) and not rota.known("p0", replaced)
    rota.forget(["p1"])
    rota.add("p0", replaced)  # a new worker for p0: read before the oldest
    assert next(iter(rota.due({}, handles.get))) == "p0"
    assert "p1" not in [pid for _ in range(6) for pid in rota.due({}, handles.get)]


def test_the_sweep_visits_every_plugin_within_its_ticks() -> None:
    visits = Visits()
    ids = [f"p{i}" for i in range(95)]
    seen: list[str] = []
    for tick in range(SWEEP_TICKS):
        seen += visits.sweep(ids, changed=tick == 0)
    assert set(seen) == set(ids)  # everyone, within SWEEP_TICKS ticks
    assert max(seen.count(pid) for pid in ids) <= 2  # and in turn: nobody favoured
    ids.append("new")  # a plugin came: the ring is made anew, nobody is skipped for long
    later = [pid for _ in range(SWEEP_TICKS) for pid in visits.sweep(ids, changed=_ == 0)]
    assert set(later) == set(ids)


def test_a_probe_reads_this_process_cpu_memory_and_threads() -> None:
    figures = probe(os.getpid())
    assert figures is not None
    cpu, rss, threads = figures
    assert cpu > 0 and rss > 10 * 2**20 and threads >= 1
    assert probe(2**22 + 12345) is None  # no such process: nothing, no error
