"""``plugbay profile ID --seconds N``: a sampling profiler the serving process runs on itself.

The host asks the process a plugin runs in (its worker, through the channel it already
has; the host itself for an inline plugin) to sample for a bounded time. A thread of
that process reads every other thread's Python stack (``sys._current_frames``) every
``interval`` seconds and counts each distinct stack. Nothing attaches from outside, so
it works in the sandbox (no ptrace, no new process), and the plugin keeps serving while
it is sampled: the sampler only reads frames, between bytecodes, under the GIL.

The result is plain data (:class:`Samples` as a dict) that crosses the channel; the
host renders it as a speedscope file (:func:`speedscope`), an SVG flame graph
(:func:`flamegraph_svg`) or the busiest functions (:func:`hottest`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any, Final, Protocol, TypedDict

from plugbay.isolation import frames
from plugbay.isolation.sample_bounds import MAX_INTERVAL, MAX_SECONDS, MIN_INTERVAL

__all__ = [
    "MAX_INTERVAL",
    "MAX_SECONDS",
    "MIN_INTERVAL",
    "NOT_CALLS",
    "SampledInWorker",
    "Samples",
    "flamegraph_svg",
    "hottest",
    "sample",
    "sampled",
    "speedscope",
]

_MAX_DEPTH: Final = 256
#: requests to a worker that are not calls: the monitor's list of calls in flight skips them
NOT_CALLS: Final = ("Init", "Cleanup", "Sample")


class Samples(TypedDict):
    """What a sampled process sends back: distinct frames, and each stack (root first, as
    indices into ``frames``) with the number of samples it was seen in."""

    pid: int
    seconds: float
    interval: float
    samples: int
    elapsed: float  # seconds the sampling really took (a loaded machine samples less often)
    frames: list[list[Any]]  # [function, file, line]
    stacks: list[list[Any]]  # [[frame index, ...], count]


def _where(filename: str) -> str:
    """A file as a reader knows it: from site-packages on, else as the code object says."""
    at = filename.rfind("site-packages/")
    return filename[at + len("site-packages/") :] if at >= 0 else filename


def sample(seconds: float, interval: float = 0.005) -> Samples:
    """Sample every other thread of this process for ``seconds`` (blocking: run it in a
    thread of its own)."""
    own = threading.get_ident()
    index: dict[tuple[str, str, int], int] = {}
    counts: Counter[tuple[int, ...]] = Counter()
    taken = 0
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        for ident, frame in sys._current_frames().items():
            if ident == own:
                continue
            stack: list[int] = []
            current: Any = frame
            while current is not None and len(stack) < _MAX_DEPTH:
                code = current.f_code
                key = (code.co_qualname, _where(code.co_filename), code.co_firstlineno)
                stack.append(index.setdefault(key, len(index)))
                current = current.f_back
            stack.reverse()
            counts[tuple(stack)] += 1
        taken += 1
        time.sleep(interval)
    return Samples(
        pid=os.getpid(),
        seconds=seconds,
        interval=interval,
        samples=taken,
        elapsed=time.monotonic() - started,
        frames=[list(key) for key in index],
        stacks=[[list(stack), count] for stack, count in counts.most_common()],
    )


async def sampled(seconds: float, interval: float = 0.005) -> Samples:
    """:func:`sample` in a thread of its own, awaited: the event loop keeps serving."""
    from plugbay.isolation.inline import run_in_daemon_thread  # the plugin API: when asked

    return await run_in_daemon_thread(lambda: sample(seconds, interval), "plugbay-sampler")


def _name(frame: list[Any]) -> str:
    return f"{frame[0]} ({frame[1]}:{frame[2]})"


def hottest(profile: Samples, *, top: int = 15) -> list[tuple[str, float, float]]:
    """The functions seen most: ``(function, share on the stack, share at the top)``, both
    as fractions of all stacks sampled, busiest first."""
    total = sum(count for _, count in profile["stacks"]) or 1
    inclusive: Counter[int] = Counter()
    own: Counter[int] = Counter()
    for stack, count in profile["stacks"]:
        for frame in set(stack):
            inclusive[frame] += count
        if stack:
            own[stack[-1]] += count
    frames = profile["frames"]
    return [
        (_name(frames[frame]), count / total, own[frame] / total)
        for frame, count in inclusive.most_common(top)
    ]


def speedscope(profile: Samples, name: str) -> dict[str, Any]:
    """The profile as a speedscope file (its documented "sampled" profile type)."""
    # each sample stands for the time between two samples, as they really came
    tick = profile["elapsed"] / profile["samples"] if profile["samples"] else profile["interval"]
    weights = [count * tick for _, count in profile["stacks"]]
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": "plugbay",
        "name": name,
        "activeProfileIndex": 0,
        "shared": {
            "frames": [{"name": f[0], "file": f[1], "line": f[2]} for f in profile["frames"]]
        },
        "profiles": [
            {
                "type": "sampled",
                "name": f"{name} (pid {profile['pid']}, {profile['samples']} samples)",
                "unit": "seconds",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": [stack for stack, _ in profile["stacks"]],
                "weights": weights,
            }
        ],
    }


def flamegraph_svg(profile: Samples, title: str, *, width: int = 1200) -> str:
    """An SVG flame graph (root at the bottom, each box as wide as its share of samples;
    hover a box for its name and share)."""
    import html

    tree: dict[str, Any] = {"count": 0, "children": {}}
    for stack, count in profile["stacks"]:
        node = tree
        node["count"] += count
        for frame in stack:
            node = node["children"].setdefault(frame, {"count": 0, "children": {}})
            node["count"] += count
    depth = _depth(tree)
    row = 16
    height = (depth + 2) * row + 24
    total = tree["count"] or 1
    boxes: list[str] = []

    def draw(node: dict[str, Any], x: float, level: int) -> None:
        for frame, child in sorted(node["children"].items(), key=lambda kv: -kv[1]["count"]):
            w = child["count"] / total * width
            if w >= 0.5:
                y = height - (level + 2) * row
                label = html.escape(_name(profile["frames"][frame]))
                share = child["count"] / total
                hue = 20 + zlib.crc32(label.encode()) % 40
                boxes.append(
                    f"<g><title>{label} — {share:.1%}</title>"
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" '
                    f'fill="hsl({hue},85%,60%)"/>'
                    + (
                        f'<text x="{x + 2:.1f}" y="{y + row - 4}">{label[: int(w // 7)]}</text>'
                        if w > 30
                        else ""
                    )
                    + "</g>"
                )
                draw(child, x, level + 1)
            x += w

    draw(tree, 0.0, 0)
    head = html.escape(f"{title}: {profile['samples']} samples over {profile['seconds']:g} s")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">'
        f'<text x="4" y="14" font-size="13">{head}</text>' + "".join(boxes) + "</svg>\n"
    )


def _depth(node: dict[str, Any]) -> int:
    children = node["children"].values()
    return 1 + max((_depth(child) for child in children), default=0)


class _Requests(Protocol):
    async def _request(
        self, make: Callable[[int], frames.Message], timeout: float, what: str = ...
    ) -> Any: ...


class SampledInWorker:
    """A worker handle's :meth:`~plugbay.isolation.base.PluginHandle.sample`: the worker
    serving the plugin samples itself (a ``Sample`` frame on the channel it has)."""

    async def sample(
        self: _Requests, seconds: float, interval: float, timeout: float
    ) -> dict[str, Any]:
        """The serving worker samples its own stacks for ``seconds`` (no second copy)."""
        out: dict[str, Any] = await self._request(
            lambda request: frames.Sample(request, seconds, interval), timeout, "sampling"
        )
        return out
