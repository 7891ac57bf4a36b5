"""Measuring and printing: each figure beside its anchor, the ratio, and the goal."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Figure", "best_of", "fmt_time", "print_figures"]


@dataclass(frozen=True)
class Figure:
    name: str
    value: float  # seconds, or a plain number when unit != "s"
    anchor_name: str
    anchor: float
    goal: str
    passed: bool | None
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.anchor if self.anchor else float("inf")


def fmt_time(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _fmt(value: float, unit: str) -> str:
    return fmt_time(value) if unit == "s" else f"{value:,.1f} {unit}".rstrip()


def best_of(fn: Callable[[], float], repeats: int = 5) -> tuple[float, float]:
    """(min, median) of ``repeats`` runs of ``fn``, which returns one measurement."""
    runs = [fn() for _ in range(repeats)]
    return min(runs), statistics.median(runs)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def print_figures(title: str, figures: list[Figure]) -> None:
    print(f"\n== {title}")
    for f in figures:
        verdict = "" if f.passed is None else ("  [goal met]" if f.passed else "  [goal MISSED]")
        print(f"  {f.name}: {_fmt(f.value, f.unit)}")
        print(f"      anchor {f.anchor_name}: {_fmt(f.anchor, f.unit)}   ratio {f.ratio:.2f}×")
        print(f"      goal: {f.goal}{verdict}")
        if f.note:
            print(f"      {f.note}")
