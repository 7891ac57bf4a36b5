"""Where a worker process runs: on its caller's core while it is called.

A call is a conversation: the host writes a frame and waits, the worker answers
and waits. When the two run on one core, each hands the core to the other; when
they run on two, each waits on a core that has gone idle. On a virtual machine
an idle core halts, and waking it for the next frame costs tens of µs (about
80 µs on the 2-core VM of docs/architecture.md, "Worker placement"): paid on
every call, it is most of a quiet machine's call. The scheduler places a woken
task on its previous core when that core is idle, so a worker that once landed
on the other core stays there, and so does its host.

:class:`Follow` keeps a worker on the core of the thread that calls it: after a
few calls in a row, when the caller's core (``sched_getcpu``, a vDSO read) is not
the one the worker is held to, the host sets the worker's affinity to that core.
That holds for concurrent callers too: they are one thread's tasks, the host
sends their calls together and the worker answers them together, so the pair
still takes turns, and on two cores each turn would wake a halted core (16
callers of a short command ran 1.4–1.6x faster held than free here;
docs/architecture.md, "Worker placement, concurrent callers"). A worker that
rests (idle for the heartbeat's ``idle_after``) is let go: idle workers are
never left held to one core. ``PLUGBAY_PLACEMENT=free`` turns it off.

Holding the worker alone is not enough: the worker's answer wakes the caller while
the worker still runs on the shared core (it has yet to go back to waiting), so the
kernel wakes the caller on the other, idle core; the caller's next call moves the
worker there, and the pair swaps cores every few calls (a lone caller's p50 swung
between 27 and 124 µs from one round to the next). So a held worker also runs in
the ``SCHED_IDLE`` class: a core running only such tasks counts as idle when the
kernel places a woken task, so the caller is woken on the worker's core and runs at
once, and the worker finishes when the caller waits again. It is only done where
the host may put the worker back (``CAP_SYS_NICE``: going back from ``SCHED_IDLE``
needs it), and only for a sandboxed worker with a CPU cgroup of its own: the class
orders a task only among its own cgroup's tasks, so beside other processes the
worker keeps its group's fair share (less while a thread of its own runs on another
core: the group's weight follows its load, and an idle-class task weighs little), and
it cannot fork a child that would inherit the class. It is undone, for every thread
of the worker, whenever the worker is let go. Should a held worker wait for its core
all the same, the heartbeat's tick sees the waits and lets it go, as it does any held
worker that shares its core; so too a worker that waits without getting its core at
all, whose waits the kernel has not counted yet (it counts one when the wait ends):
runnable through two ticks in a row without running.

Affinity is a scheduling hint, not a limit: the worker's CPU quota (its cgroup)
and every other layer are unchanged; a plugin that sets its own affinity only
undoes the hint. A held worker that waits for its core (the caller's core is
shared with other work: the host's own, another held worker's, another
process's; read from ``/proc/PID/schedstat`` at the heartbeat's tick) is let go
for a while, so under load it runs where the scheduler finds room; each time in a
row that a hold is let go for that, the while doubles (up to about a minute), so
workers that keep a core busy side by side spend nearly all their time free.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import Final

__all__ = ["ENABLED", "HELD_BATCH", "Follow"]

#: calls in a row before a worker let go is held again (a worker called now and then
#: is not moved for one call)
HOLD_AFTER: Final = 4
#: a held worker that waited longer than this on average for its core each time it ran
#: (over one heartbeat tick) shares that core with other work: it is let go
CONTENDED_NS: Final = 50_000
#: a batch (``call_many``) of more calls than this lets the worker go: its frames leave
#: in several writes, and the worker answers the first ones while the host still
#: encodes and sends the rest, which two cores do side by side (4,000 at once: 0.88x
#: held of free; 16 or 64 a batch: 1.3–1.6x)
HELD_BATCH: Final = 256
#: ticks a worker let go for contention stays free before it may be held again; doubled
#: for each such let-go in a row, up to ``COOL_TICKS << MAX_STRIKES`` (64 s at 0.2 s)
COOL_TICKS: Final = 5
MAX_STRIKES: Final = 6
#: ticks held without waiting for its core that forgive a worker's let-goes in a row
CALM_TICKS: Final = 25
#: ticks in a row a held worker is runnable without running before it is let go
STALLED_TICKS: Final = 2
_NO_PRIORITY: Final = os.sched_param(0)


def _sched_getcpu() -> Callable[[], int] | None:
    try:
        getcpu = ctypes.CDLL(None).sched_getcpu
    except (AttributeError, OSError):
        return None
    getcpu.restype = ctypes.c_int
    getcpu.argtypes = []
    return getcpu


_getcpu: Final = _sched_getcpu()


def _schedstat(pid: int) -> tuple[int, int, int] | None:
    """(ns run, ns waited for a core, times run) of ``pid``, from ``/proc/PID/schedstat``.

    The kernel adds a wait to the second figure when it ends (the task gets its core,
    or leaves the run queue), so a task still waiting shows none of it: see
    :func:`_runnable`."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            ran, waited, runs = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None
    return ran, waited, runs


def _runnable(pid: int) -> bool:
    """Whether ``pid`` is running or waiting for a core (``R`` in ``/proc/PID/stat``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2][1:2] == b"R"
    except OSError:
        return False


#: whether process workers follow their caller's core (``PLUGBAY_PLACEMENT=free``: no)
ENABLED: bool = _getcpu is not None and os.environ.get("PLUGBAY_PLACEMENT", "") != "free"

_CAP_SYS_NICE: Final = 23


def _may_reschedule() -> bool:
    """Whether this process may put a worker in ``SCHED_IDLE`` and take it out again:
    leaving ``SCHED_IDLE`` for ``SCHED_OTHER`` needs ``CAP_SYS_NICE`` (or a nice limit
    a worker does not have), and a worker left there would starve under load."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except (OSError, ValueError):
        pass
    return False


#: whether a held worker runs in the ``SCHED_IDLE`` class (see the module docstring)
IDLE_CLASS: bool = _may_reschedule()


def _threads_back_from_idle(pid: int) -> None:
    """``SCHED_OTHER`` again for the worker's other threads left in ``SCHED_IDLE``: a
    thread takes its creator's class, so one started while the worker was held (an
    executor's, a plugin's own) would otherwise stay in it for good."""
    try:
        tids = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tids:
        try:
            if tid != pid and os.sched_getscheduler(tid) == os.SCHED_IDLE:
                os.sched_setscheduler(tid, os.SCHED_OTHER, _NO_PRIORITY)
        except OSError:  # the thread ended meanwhile
            pass


class Follow:
    """One worker's placement: held to the core of its caller, or free."""

    __slots__ = (
        "allowed",
        "calm",
        "cool",
        "cpu",
        "gone",
        "idle",
        "idle_class",
        "pid",
        "seen",
        "stalls",
        "streak",
        "strikes",
    )

    def __init__(
        self, pid: int, *, idle_class: bool = False, gone: Callable[[], bool] | None = None
    ) -> None:
        self.pid = pid
        #: whether the worker has exited: its number may name another process by now,
        #: which must not be moved (``zygote.Child.exited``); None: not known here
        self.gone = gone
        #: whether a hold may put this worker in ``SCHED_IDLE``: a sandboxed worker with a
        #: CPU cgroup of its own (idle only among its own tasks, and unable to fork)
        self.idle_class = idle_class
        #: the core the worker is held to, or -1 (free); -2: never again (not permitted)
        self.cpu = -1
        #: calls since the worker was last let go (held from the ``HOLD_AFTER + 1``-th)
        self.streak = 0
        #: the worker's own affinity, restored when it is let go (read at the first hold)
        self.allowed: frozenset[int] = frozenset()
        #: ticks left before a worker let go for contention may be held again
        self.cool = 0
        #: let-goes for contention in a row (each doubles the next cooling), and the
        #: ticks held without waiting since the last one (``CALM_TICKS`` forgive them)
        self.strikes = 0
        self.calm = 0
        #: (ns run, ns waited for a core, times run) at the last tick, from
        #: /proc/PID/schedstat
        self.seen = (0, 0, 0)
        #: ticks in a row the held worker was runnable and did not run
        self.stalls = 0
        #: whether the worker was put in ``SCHED_IDLE`` (held), to be put back when let go
        self.idle = False

    def call(self) -> None:
        """Before a call leaves, whoever else awaits an answer (see the module's doc)."""
        if self.streak < HOLD_AFTER:
            self.streak += 1
            return
        if _getcpu is None or not ENABLED or self.cpu == -2 or self.cool:
            return
        cpu = _getcpu()
        if cpu != self.cpu:
            self._hold(cpu)

    def _hold(self, cpu: int) -> None:
        if self.gone is not None and self.gone():
            self.cpu = -2
            return
        try:
            if not self.allowed:
                self.allowed = frozenset(os.sched_getaffinity(self.pid))
            if cpu not in self.allowed:  # a cpuset the worker may not leave
                return
            os.sched_setaffinity(self.pid, (cpu,))
        except OSError:  # exited, or not ours to place: leave it to the scheduler
            self.cpu = -2
            return
        if self.idle_class and IDLE_CLASS and not self.idle:
            try:
                os.sched_setscheduler(self.pid, os.SCHED_IDLE, _NO_PRIORITY)
                self.idle = True
            except OSError:  # not ours to reschedule: the hold stays a plain one
                pass
        if self.cpu == -1:  # the next tick judges the hold by its own waits, not by
            # what the worker waited while free (say, beside a busy neighbour just before)
            self.seen = _schedstat(self.pid) or self.seen
        self.cpu = cpu

    def tick(self, busy: bool) -> None:
        """A heartbeat tick (every 0.2 s while the worker is busy): an idle worker is let
        go; a held one that waits for its core (the caller's core is shared with other
        work) is let go for :data:`COOL_TICKS` ticks, doubled for each time in a row, so
        it may run on an idle core."""
        if self.cool:
            self.cool -= 1
        if not busy:
            self.release()
            return
        stat = _schedstat(self.pid)
        if stat is None:
            return
        (ran, waited, runs), (ran_before, waited_before, runs_before) = stat, self.seen
        self.seen = stat
        if self.cpu < 0:
            return
        # a held worker that did not run at all since the last tick but waited counts
        # too: in SCHED_IDLE under another task's load, it may not run for a whole tick
        # (a kernel without scheduler statistics reads 0 0 0: no run time, no stall)
        if waited - waited_before > CONTENDED_NS * max(runs - runs_before, 1) or self._stalled(
            ran == ran_before and ran != 0
        ):
            self.release()
            self.cool = COOL_TICKS << self.strikes
            self.strikes = min(self.strikes + 1, MAX_STRIKES)
            self.calm = 0
        elif self.strikes:
            self.calm += 1
            if self.calm >= CALM_TICKS:
                self.strikes = self.calm = 0

    def _stalled(self, still: bool) -> bool:
        """Whether the held worker has been runnable without running (``still``: its run
        time has not grown since the last tick) for :data:`STALLED_TICKS` ticks in a row:
        one that never gets its core has no wait counted yet. Seen in a full test run: a
        worker in SCHED_IDLE beside a busy process ran 12 ms in 20 s, its waits at 2.8 ms
        all along."""
        if not still or not _runnable(self.pid):
            self.stalls = 0
            return False
        self.stalls += 1
        return self.stalls >= STALLED_TICKS

    def release(self) -> None:
        """Let the worker run on any of its cores again (idle, contended or stopped)."""
        self.streak = 0
        self.stalls = 0
        if self.cpu < 0:
            return
        self.cpu = -1
        if self.gone is not None and self.gone():
            self.cpu = -2
            return
        try:
            os.sched_setaffinity(self.pid, self.allowed)
            if self.idle:
                self.idle = False
                os.sched_setscheduler(self.pid, os.SCHED_OTHER, _NO_PRIORITY)
                _threads_back_from_idle(self.pid)
        except OSError:
            self.cpu = -2
