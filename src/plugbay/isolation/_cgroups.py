"""Control groups: the memory, CPU-bandwidth and task-count layer of the sandbox.

Each worker gets ``plugbay/<name>`` under the host's *own* cgroup in every
hierarchy it needs (memory, cpu, pids): nested there, a plugin also stays
inside whatever limits the host itself runs under, and plugbay writes only
below a cgroup it already belongs to. cgroup v1 (one hierarchy per
controller) and v2 (one unified tree) are both handled; the machine decides,
v1 winning when it mounts all three controllers itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from plugbay.isolation._layer import LayerStatus, SandboxPolicy

__all__ = [
    "CONTROLLERS",
    "CgroupLayer",
    "CgroupUnavailable",
    "Cgroups",
    "discover",
    "orphaned",
    "owner_of",
    "worker_name",
]

CONTROLLERS: Final = ("memory", "cpu", "pids")
BASE: Final = "plugbay"
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CPU_PERIOD_US: Final = 100_000
_SWAP_FILES: Final = ("memory.memsw.limit_in_bytes", "memory.swap.max")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
#: the host pid in a worker's cgroup name (worker_name), and in the layer's own names
_OWNER: Final = re.compile(r"(?:-h|^w|^probe-)(\d+)-[0-9a-f]{8}$")


def worker_name(plugin_id: str) -> str:
    """A worker's cgroup name: its plugin, the pid of the host that owns it (so a later
    host can tell the cgroup of a dead host from one of a host still running), a nonce."""
    return f"{plugin_id}-h{os.getpid()}-{uuid.uuid4().hex[:8]}"


def owner_of(name: str) -> int | None:
    """The pid of the host that made a worker cgroup, if its name says (see worker_name)."""
    match = _OWNER.search(name)
    return int(match.group(1)) if match else None


class CgroupUnavailable(Exception):
    """No writable hierarchy for a needed controller; the message says why."""


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mountinfo() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) of every mount this process sees."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            opts = set(rfields[2].split(","))
            out.append((_unescape(fields[3]), _unescape(fields[4]), rfields[0], opts))
    return out


def _read(path: str) -> bytes:
    """A small file's bytes, read with two system calls and no file object: the
    sandboxed worker reads and writes cgroupfs as it confines itself, where each Python
    object it uses is a page copied from the zygote (``isolation._warm``)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _own_cgroups(raw: bytes | None = None) -> dict[str, str]:
    """controller → this process's cgroup path; ``""`` for the v2 tree (``raw``: the
    bytes of ``/proc/self/cgroup``, read here when not given)."""
    own: dict[str, str] = {}
    text = os.fsdecode(_read("/proc/self/cgroup") if raw is None else raw)
    for line in text.splitlines():
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    return own


def _inside(mount: str, root: str, path: str) -> str | None:
    rel = os.path.relpath(path, root)
    if rel == ".":
        return mount
    return None if rel.startswith("..") else os.path.join(mount, rel)


@dataclass(frozen=True)
class Cgroups:
    """Where the host's cgroups are, and how to make, fill and remove a worker's."""

    version: int
    #: controller → the host's own cgroup directory in that controller's hierarchy
    parents: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        if self.version == 2:
            return f"cgroup v2: {self.parents[0][1]}/{BASE}/<name>"
        return "cgroup v1: " + ", ".join(f"{c}={d}/{BASE}/<name>" for c, d in self.parents)

    def dirs(self, name: str) -> dict[str, str]:
        """controller → the worker's directory (one for all three under v2)."""
        if not _NAME.match(name):
            raise ValueError(f"cgroup name {name!r}: use letters, digits, '.', '_', '-'")
        return {c: os.path.join(d, BASE, name) for c, d in self.parents}

    def create(
        self, name: str, *, memory: int | None, cpu_cores: float | None, pids: int | None
    ) -> dict[str, str]:
        """Make the worker's cgroup and write its limits; returns file → value written."""
        dirs = self.dirs(name)
        if self.version == 2:
            self._enable_v2_controllers()
        written: dict[str, str] = {}
        for controller, path in dirs.items():
            try:  # its parent (plugbay/) is there but for the first worker
                os.mkdir(path)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(path, exist_ok=True)
            for file, value in self._limits(controller, memory, cpu_cores, pids):
                target = os.path.join(path, file)
                if file in _SWAP_FILES and not os.path.exists(target):
                    continue  # swap accounting is off: no swap to limit
                _write(target, value)
                written[file] = value
        return written

    def _limits(
        self, controller: str, memory: int | None, cpu_cores: float | None, pids: int | None
    ) -> list[tuple[str, str]]:
        quota = None if cpu_cores is None else max(1000, int(cpu_cores * _CPU_PERIOD_US))
        pids_max = "max" if pids is None else str(pids)
        if self.version == 2:
            out = [("pids.max", pids_max)]
            if memory is not None:
                out += [("memory.max", str(memory)), ("memory.swap.max", "0")]
            if quota is not None:
                out.append(("cpu.max", f"{quota} {_CPU_PERIOD_US}"))
            return out
        if controller == "memory" and memory is not None:
            # the memory limit first: memsw may never be below it
            return [
                ("memory.limit_in_bytes", str(memory)),
                ("memory.memsw.limit_in_bytes", str(memory)),
            ]
        if controller == "cpu" and quota is not None:
            return [("cpu.cfs_period_us", str(_CPU_PERIOD_US)), ("cpu.cfs_quota_us", str(quota))]
        if controller == "pids":
            return [("pids.max", pids_max)]
        return []

    def _enable_v2_controllers(self) -> None:
        parent = self.parents[0][1]
        base = os.path.join(parent, BASE)
        os.makedirs(base, exist_ok=True)
        for directory in (parent, base):
            try:
                _write(os.path.join(directory, "cgroup.subtree_control"), "+memory +cpu +pids")
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                raise OSError(
                    exc.errno,
                    f"{exc.strerror}: under cgroup v2 a cgroup holding processes cannot hand "
                    "controllers to children; run the host in a leaf of a delegated subtree "
                    "(systemd: Delegate=yes)",
                ) from None

    def join(self, name: str, pid: int) -> None:
        for path in self.dirs(name).values():
            _write(os.path.join(path, "cgroup.procs"), str(pid))

    def procs(self, name: str) -> set[int]:
        found: set[int] = set()
        for path in self.dirs(name).values():
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    found.update(int(line) for line in f if line.strip())
            except FileNotFoundError:
                pass
        return found

    def oom_kills(self, name: str) -> int:
        """How many tasks the OOM killer took in the worker's cgroup (0 if it is gone)."""
        directory = self.dirs(name)["unified" if self.version == 2 else "memory"]
        file = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            with open(os.path.join(directory, file)) as f:
                counts = dict(line.split() for line in f if line.strip())
        except FileNotFoundError:
            return 0
        return int(counts.get("oom_kill", 0))

    def remove(self, name: str, timeout: float = 3.0) -> None:
        """Kill whatever still runs in the worker's cgroup, then delete it (idempotent)."""
        deadline = time.monotonic() + timeout
        dirs = self.dirs(name)
        while pids := self.procs(name):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"cgroup {name}: processes {sorted(pids)} survive")
            time.sleep(0.01)
        for path in dirs.values():
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY while the last task is torn down
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)


def orphaned(groups: Cgroups, *, alive: Callable[[int], bool]) -> list[str]:
    """Worker cgroups under ``plugbay/`` whose owner host is dead. A name without an
    owner pid (another tool's, or an older plugbay's) is never taken for an orphan."""
    names: set[str] = set()
    for _controller, directory in groups.parents:
        try:
            entries = list(os.scandir(os.path.join(directory, BASE)))
        except OSError:
            continue
        for entry in entries:
            pid = owner_of(entry.name)
            if pid is None or pid == os.getpid() or not entry.is_dir(follow_symlinks=False):
                continue
            if not alive(pid):
                names.add(entry.name)
    return sorted(names)


def _write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"writing {value!r} to {path}: {exc.strerror}") from None


#: the last answer of :func:`discover`, and the bytes of ``/proc/self/cgroup`` it was
#: found for (compared as they are: a worker checks the zygote's answer without parsing)
_found: tuple[bytes, Cgroups] | None = None


def discover() -> Cgroups:
    """The hierarchies holding memory, cpu and pids for this process; raises CgroupUnavailable.

    The answer is kept while this process stays in the same cgroups and their directories
    are there: finding it reads ``/proc/self/mountinfo``, which holds one line per mounted
    storage image, so a thousand sandboxed plugins made every worker start (and every
    reaping) cost as much as a thousand mounts. A worker inherits the zygote's answer."""
    global _found
    raw = _read("/proc/self/cgroup")
    found = _found
    if found is not None and found[0] == raw and all(os.path.isdir(d) for _, d in found[1].parents):
        return found[1]
    groups = _discover(_own_cgroups(raw))
    _found = (raw, groups)
    return groups


def _discover(own: dict[str, str]) -> Cgroups:
    mounts = _mountinfo()
    v1 = _v1_hierarchies(own, mounts)
    if len(v1) == len(CONTROLLERS):
        return Cgroups(1, tuple((c, v1[c]) for c in CONTROLLERS))
    unified = _v2_hierarchy(own, mounts)
    if unified is not None:
        return Cgroups(2, (("unified", unified),))
    missing = [c for c in CONTROLLERS if c not in v1]
    raise CgroupUnavailable(
        f"no cgroup hierarchy offers {', '.join(missing)} to this process "
        f"(v1 mounts: {', '.join(sorted(v1)) or 'none'}; no cgroup2 mount delegates them)"
    )


def _v1_hierarchies(
    own: dict[str, str], mounts: list[tuple[str, str, str, set[str]]]
) -> dict[str, str]:
    """This process's directory in each cgroup v1 hierarchy holding one of the controllers."""
    v1: dict[str, str] = {}
    for controller in CONTROLLERS:
        for root, point, fstype, opts in mounts:
            if fstype == "cgroup" and controller in opts and controller in own:
                path = _inside(point, root, own[controller])
                if path is not None and os.path.isdir(path):
                    v1[controller] = path
                    break
    return v1


def _v2_hierarchy(own: dict[str, str], mounts: list[tuple[str, str, str, set[str]]]) -> str | None:
    """This process's directory in a cgroup2 mount that delegates every controller."""
    for root, point, fstype, _opts in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        path = _inside(point, root, own[""])
        if path is None:
            continue
        try:
            with open(os.path.join(path, "cgroup.controllers")) as f:
                available = set(f.read().split())
        except OSError:
            continue
        if set(CONTROLLERS) <= available:
            return path
    return None


# --- the layer ---------------------------------------------------------------------
# limits.py imports this module for the class below, so the shared vocabulary
# (LayerStatus, SandboxError, SandboxPolicy) is imported where it is used.

#: what the cgroup grants above ``memory_bytes`` + the resident image at fork: page tables, slabs
MEMORY_SLACK: Final = 16 << 20


def _resident_bytes() -> int:
    return int(_read("/proc/self/statm").split()[1]) * os.sysconf("SC_PAGE_SIZE")


class CgroupLayer:
    """Memory, CPU bandwidth and task count, enforced by the kernel for the whole worker."""

    name = "cgroup"
    guarantees = (
        "memory charged after fork (copies of the image, new pages, page cache, kernel "
        "memory) ≤ resident image + memory_bytes + 16 MiB, else the OOM killer; "
        "CPU bandwidth ≤ cpu_cores; tasks (processes + threads) ≤ 1 + threads + processes; "
        "remove() kills every task left behind"
    )

    def __init__(self, group: str | None = None) -> None:
        raw = group or f"w{os.getpid()}-{uuid.uuid4().hex[:8]}"
        safe = _UNSAFE.sub("_", raw)[:100]
        self.group = safe if safe[:1].isalnum() else f"w{safe}"[:100]

    def probe(self) -> LayerStatus:
        from plugbay.isolation._layer import LayerStatus

        probe = f"probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            found = discover()
            found.create(probe, memory=None, cpu_cores=None, pids=None)
            found.remove(probe)
        except (CgroupUnavailable, OSError) as exc:
            return LayerStatus(self.name, False, f"not writable: {exc}", self.guarantees)
        return LayerStatus(self.name, True, found.describe(), self.guarantees)

    def apply(self, policy: SandboxPolicy) -> LayerStatus:
        from plugbay.isolation._layer import LayerStatus, SandboxError

        try:
            found = discover()
            memory = None
            if policy.memory_bytes is not None:
                # what the plugin adds to the pages it was forked with (which it may all
                # copy on write); RLIMIT_AS usually answers first, with a MemoryError
                memory = _resident_bytes() + policy.memory_bytes + MEMORY_SLACK
            tasks = None if policy.threads is None else 1 + policy.threads + policy.processes
            written = found.create(
                self.group, memory=memory, cpu_cores=policy.cpu_cores, pids=tasks
            )
            found.join(self.group, os.getpid())
        except (CgroupUnavailable, OSError) as exc:
            raise SandboxError(
                f"cannot set up cgroup {self.group!r}: {exc}", layer=self.name
            ) from exc
        limits = ", ".join(f"{k}={v}" for k, v in written.items())
        where = found.describe().replace("<name>", self.group)
        return LayerStatus(self.name, True, f"{where}; {limits}", self.guarantees)

    def procs(self) -> set[int]:
        """The pids in this worker's cgroup (call from the host)."""
        try:
            return discover().procs(self.group)
        except CgroupUnavailable:
            return set()

    def oom_kills(self) -> int:
        """Tasks the OOM killer took in this worker's cgroup. Read it before :meth:`remove`
        to tell a worker that went over its memory from one that crashed."""
        try:
            return discover().oom_kills(self.group)
        except CgroupUnavailable:
            return 0

    def remove(self) -> None:
        """Kill what is left in the worker's cgroup and delete it; call after the worker exits."""
        try:
            found = discover()
        except CgroupUnavailable:
            return
        found.remove(self.group)
