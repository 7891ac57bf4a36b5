"""The plugin index's round trip: an index of 100 plugins built, searched and installed from.

Figures, each beside an anchor measured in the same run:

* ``plugbay index build`` over 100 plugins × 2 versions (200 wheels), against the
  floor of any index builder: reading and hashing the same wheels (SHA-256);
* a search over HTTP (fetching ``plugbay-index.json`` from python's static file server
  and matching), against fetching the same file with httpx and nothing else;
* resolve + install of a plugin whose dependency chain is 7 deep (7 wheels downloaded,
  digests checked, verified, unpacked into the store), against pip installing the same
  7 wheels from the same server through the index's PEP 503 pages (``--no-deps``,
  ``--target``: no resolving, so pip's figure is a floor for the transfer and unpack).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench._report import Figure, best_of, print_figures
from plugbay.model.versions import Range, Version
from plugbay.pdk.index import PluginIndex, build_index, plan_install
from plugbay.pdk.signing import TrustPolicy, verify_wheel
from plugbay.pdk.wheels import file_sha256
from plugbay.runtime.host import HOST_VERSION
from plugbay.runtime.store import PluginStore
from plugbay.state import StateStore
from tests._index import plugin_wheel, serve

PLUGINS = 100
VERSIONS = ("1.0.0", "1.1.0")


def _wheels(directory: Path) -> None:
    """Plugin i needs plugin i // 2 (^1): a tree whose deepest leaves are 7 levels down."""
    for i in range(1, PLUGINS + 1):
        deps = {f"bench.p{i // 2:03d}": "^1"} if i > 1 else {}
        for v in VERSIONS:
            plugin_wheel(
                directory,
                f"bench.p{i:03d}",
                v,
                dependencies=deps,
                description=f"benchmark plugin number {i} of the {'even' if i % 2 else 'odd'} kind",
            )


def _chain(leaf: int) -> list[str]:
    out = []
    while leaf >= 1:
        out.append(f"bench.p{leaf:03d}")
        leaf //= 2
    return out


def _install(url: str, state: Path) -> int:
    index = PluginIndex.open(url)
    plan = plan_install(
        index,
        "bench.p100",
        Range.parse("^1"),
        installed=[],
        host_version=Version.parse(HOST_VERSION),
    )
    policy = TrustPolicy.for_host(state)
    with tempfile.TemporaryDirectory() as tmp, StateStore.open(state) as db:
        store = PluginStore(state / "store", db)
        for entry in plan.downloads:
            wheel = index.download(entry, Path(tmp))
            verify_wheel(wheel, policy)
            store.install(wheel, host_version=Version.parse(HOST_VERSION), origin=url)
    return len(plan.downloads)


def _pip(url: str, target: Path, names: list[str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--isolated", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--no-compile", "--target", str(target),
         "--index-url", url + "simple/", *[f"{n.replace('.', '-')}==1.1.0" for n in names]],
        check=True,
    )  # fmt: skip


def run() -> int:
    work = Path(tempfile.mkdtemp(prefix="plugbay-bench-index-"))
    try:
        directory = work / "index"
        _wheels(directory)
        wheels = sorted(directory.glob("*.whl"))

        def build() -> float:
            start = time.perf_counter()
            build_index(directory)
            return time.perf_counter() - start

        def hash_all() -> float:
            start = time.perf_counter()
            for w in wheels:
                file_sha256(w)
            return time.perf_counter() - start

        build_s, _ = best_of(build, 3)
        hash_s, _ = best_of(hash_all, 3)
        figures = [
            Figure(f"index build, {PLUGINS} plugins ({len(wheels)} wheels)", build_s,
                   "read + SHA-256 of the same wheels", hash_s, "under 5 s", build_s < 5.0),
        ]  # fmt: skip
        with serve(directory) as url:

            def search() -> float:
                start = time.perf_counter()
                found = PluginIndex.open(url).search("odd kind")
                assert len(found) == PLUGINS // 2
                return time.perf_counter() - start

            def fetch() -> float:
                start = time.perf_counter()
                httpx.get(url + "plugbay-index.json").raise_for_status()
                return time.perf_counter() - start

            search_s, _ = best_of(search, 5)
            fetch_s, _ = best_of(fetch, 5)
            figures.append(
                Figure("search over HTTP (fetch index + match)", search_s,
                       "fetching the index file alone (httpx)", fetch_s, "under 0.5 s",
                       search_s < 0.5),
            )  # fmt: skip
            counts: list[int] = []

            def install() -> float:
                state = Path(tempfile.mkdtemp(dir=work))
                start = time.perf_counter()
                counts.append(_install(url, state))
                return time.perf_counter() - start

            def pip() -> float:
                target = Path(tempfile.mkdtemp(dir=work))
                start = time.perf_counter()
                _pip(url, target, _chain(100))
                return time.perf_counter() - start

            install_s, _ = best_of(install, 3)
            pip_s, _ = best_of(pip, 3)
            assert counts[0] == len(_chain(100)) == 7, counts
            figures.append(
                Figure("resolve + install, 7-deep chain over HTTP", install_s,
                       "pip install --no-deps of the same 7 wheels (same server)", pip_s,
                       "no slower than pip's transfer and unpack (ratio ≤ 1×)",
                       install_s <= pip_s),
            )  # fmt: skip
        print_figures("plugin index: build, search, resolve + install", figures)
        return sum(1 for f in figures if f.passed is False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(run())
