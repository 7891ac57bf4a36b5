"""What the zygote's boot (a fresh interpreter importing plugbay and the worker runtime,
``isolation.zygote.zygote_main`` up to its ready line) leaves out: modules no worker
needs at its start, each some milliseconds of every ``plugbay run``'s wait for its
first sandboxed plugin (docs/architecture.md, "`plugbay run`, fifth pass")."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import plugbay

_PROBE = """
import sys
import plugbay
from plugbay.isolation import _warm, diagnostics, limits, loops, worker
heavy = [m for m in ("importlib.metadata", "email.message", "packaging.requirements")
         if m in sys.modules]
print(",".join(heavy) or "-")
print(plugbay.__version__)
print("importlib.metadata" in sys.modules)
"""


def test_the_worker_runtime_loads_no_package_metadata_until_the_version_is_asked() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    # importlib.metadata (and the email parser it loads) and the PEP 508 parser: not
    # imported by plugbay, nor by the worker runtime the zygote holds
    assert out[0] == "-"
    # the version still reads as before, on first use
    assert out[1] == importlib.metadata.version("plugbay")
    assert out[2] == "True"


def test_the_version_is_kept_once_read() -> None:
    assert plugbay.__version__ == importlib.metadata.version("plugbay")
    assert vars(plugbay)["__version__"] == plugbay.__version__
    assert "__version__" in plugbay.__all__
