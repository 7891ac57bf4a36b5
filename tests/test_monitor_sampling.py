"""The monitor measures many workers in turn (monitor/sampling.py)."""

from __future__ import annotations

from plugbay.monitor.sampling import SampleRota


class Worker:
    isolated = True


def test_every_worker_is_measured_in_turn_and_a_new_one_first() -> None:
    rota = SampleRota()
    handles = {f"p{i}": Worker() for i in range(5)}
    measured: list[str] = []
    for _ in range(5):  # a budget of two workers a tick
        due = list(rota.due(handles))[:2]
        rota.measured(due)
        measured += due
    assert sorted(set(measured)) == sorted(handles)  # nobody is left out
    counts = {pid: measured.count(pid) for pid in handles}
    assert max(counts.values()) - min(counts.values()) <= 1  # and nobody is favoured
    handles["p0"] = Worker()  # replaced: a new worker, measured on the next tick
    assert next(iter(rota.due(handles))) == "p0"
