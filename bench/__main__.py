"""Run the benchmark suites: ``python -m bench`` (all) or ``python -m bench spine``."""

from __future__ import annotations

import importlib
import platform
import sys

SUITES = [
    "spine", "sandbox", "scale", "quota", "monitor", "reload", "http", "pdk", "envs", "trust",
    "wasm", "index", "irc", "trials", "ray", "activation",
]  # fmt: skip


def main(argv: list[str]) -> int:
    chosen = argv or SUITES
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        print(
            f"unknown suite(s): {', '.join(unknown)}; suites: {', '.join(SUITES)}", file=sys.stderr
        )
        return 2
    print(
        f"plugbay benchmarks — Python {platform.python_version()} on {platform.machine()}, "
        f"{platform.system()} {platform.release()}"
    )
    missed = 0
    for suite in chosen:
        module = importlib.import_module(f"bench.{suite}")
        missed += module.run()
    print(f"\n{missed} goal(s) missed" if missed else "\nall goals met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
