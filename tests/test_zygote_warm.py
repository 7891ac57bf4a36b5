"""The zygote's warm-up (``isolation._warm``): it must leave the zygote as a worker needs it.

A worker forked after the warm-up is confined with Landlock and user namespaces, which
confine one thread: the warm-up must start none. It imports a throwaway plugin, which
must be gone again (no module, no files). Run in a fresh interpreter: the
warm-up freezes the collector, which a test process must not have done to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

PROBE = """
import gc, json, os, sys, tempfile, threading
from plugbay.isolation import _warm

before = set(os.listdir(tempfile.gettempdir()))
failed = _warm.prepare()
print(json.dumps({
    "failed": failed,
    "threads": threading.active_count(),
    "os_threads": len(os.listdir("/proc/self/task")),
    "plugin_modules": [m for m in sys.modules if m.startswith("plugbay_plugins.")],
    "left_behind": sorted(set(os.listdir(tempfile.gettempdir())) - before),
    "frozen": gc.get_freeze_count(),
    "open_fds": len(os.listdir("/proc/self/fd")),
}))
"""


def _script(source: str, **env: str) -> dict[str, Any]:
    """What a fresh interpreter running ``source`` prints (one JSON object)."""
    out = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_warm_up_leaves_one_thread_no_plugin_and_no_files() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seen = _script(PROBE, TMPDIR=tmp)
        assert not list(Path(tmp).iterdir())
    assert seen["failed"] == [], seen  # every step ran: nothing was left to the workers
    assert seen["threads"] == 1 and seen["os_threads"] == 1, seen
    assert seen["plugin_modules"] == [], seen
    assert seen["left_behind"] == [], seen
    # the zygote's objects are out of the collector's reach
    assert seen["frozen"] > 10_000, seen
    # stdin, stdout, stderr and the directory listing itself: the socketpair is closed
    assert seen["open_fds"] <= 4, seen


FRAGMENTED = """
import json
from plugbay.isolation import _warm

# a heap full of holes, as a zygote's is after its imports and collections
kept = [bytes(15) for _ in range(100_000)]  # 48-byte blocks
del kept[::2]
before = _warm._free_blocks()
filled = _warm._fill_free_blocks()
after = _warm._free_blocks()
print(json.dumps({"before": before.get(48, 0), "after": after.get(48, 0), "filled": filled}))
"""


def test_filling_the_free_blocks_leaves_no_holes_for_a_worker_to_scatter_into() -> None:
    """A worker's new objects must go to fresh pools, not one to each of the zygote's pages:
    after the fill, pymalloc's used pools have at most two fresh pools' worth of free blocks
    (16 KiB pools: about 340 blocks of 48 bytes each) where 50,000 holes were."""
    seen = _script(FRAGMENTED)
    assert seen["before"] >= 50_000, seen
    assert seen["after"] <= 2 * 16 * 1024 // 48, seen
    assert seen["filled"] >= seen["before"], seen


LIBC = """
import ctypes, json
from plugbay.isolation import _landlock, _warm, limits

_warm.prepare()
classes = len(ctypes._CFuncPtr.__subclasses__())
abi, _ = _landlock.abi_version()
probed = limits.NoNewPrivsLayer().probe().active
print(json.dumps({"new_classes": len(ctypes._CFuncPtr.__subclasses__()) - classes,
                  "abi": abi, "probed": probed}))
"""


def test_the_sandbox_layers_call_libc_through_the_zygotes_one_handle() -> None:
    """Each ``ctypes.CDLL`` makes a class (and each function looked up on it an object) that
    a worker would copy: after the warm-up, the layers' libc calls make none, and work."""
    seen = _script(LIBC)
    assert seen["new_classes"] == 0, seen
    assert seen["probed"] is True and seen["abi"] >= 0, seen


HEAP = """
import ctypes, json
from plugbay.isolation import _warm

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = _warm._MallInfo2

def holes():  # free bytes below the heap's top chunk
    info = libc.mallinfo2()
    return info.fordblks - info.keepcost

kept = [bytes(3000) for _ in range(2000)]  # glibc's heap: over pymalloc's 512 bytes
del kept[::2]
before = holes()
taken = _warm._fill_free_heap()
print(json.dumps({"before": before, "after": holes(), "taken": taken}))
"""


def test_filling_the_free_heap_leaves_no_holes_below_its_top() -> None:
    """The same for glibc's heap, where a worker's larger objects go: 1000 holes of about
    3 KB become (almost) none, the rest of each hole too small for any request."""
    seen = _script(HEAP)
    assert seen["before"] >= 1000 * 3000, seen
    assert seen["after"] < seen["before"] // 50, seen
    assert seen["taken"] >= seen["before"] * 9 // 10, seen


SHARED_CODE = """
import asyncio, json, os, uvloop
from plugbay.isolation import _warm

mapped = _warm.map_code()
ran = os.pipe()
never = os.pipe()
pid = os.fork()
if pid == 0:  # a worker: runs uvloop's code, which its parent never ran, then idles
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.sleep(0))
    os.write(ran[1], b"x")
    os.read(never[0], 1)  # until killed
    os._exit(0)
os.read(ran[0], 1)
own = 0  # kB of uvloop's file pages that only the child maps
with open(f"/proc/{pid}/smaps") as smaps:
    name = ""
    for line in smaps:
        if "-" in line.split(" ", 1)[0]:
            name = line.split()[-1]
        elif line.startswith("Private_Clean:") and "uvloop" in name:
            own += int(line.split()[1])
os.kill(pid, 9)
os.waitpid(pid, 0)
print(json.dumps({"mapped": mapped, "own_kb": own}))
"""


def test_a_workers_extension_code_is_shared_with_the_zygote() -> None:
    """A page of a shared object counts in a worker's own memory while the worker alone
    maps it: after ``map_code`` a child that runs uvloop's code (which its parent never
    ran) has none of uvloop's pages to itself (0.8 MiB of each idle worker before)."""
    pytest.importorskip("uvloop")
    seen = _script(SHARED_CODE)
    assert seen["mapped"] > 100, seen
    assert seen["own_kb"] == 0, seen
