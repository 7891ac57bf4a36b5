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


def test_warm_up_leaves_one_thread_no_plugin_and_no_files() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", PROBE],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={"TMPDIR": tmp, "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        )
        seen = json.loads(out.stdout)
        assert not list(Path(tmp).iterdir())
    assert seen["failed"] == [], seen  # every step ran: nothing was left to the workers
    assert seen["threads"] == 1 and seen["os_threads"] == 1, seen
    assert seen["plugin_modules"] == [], seen
    assert seen["left_behind"] == [], seen
    # the zygote's objects are out of the collector's reach
    assert seen["frozen"] > 10_000, seen
    # stdin, stdout, stderr and the directory listing itself: the socketpair is closed
    assert seen["open_fds"] <= 4, seen
