"""Where an inline plugin's asyncio tasks are waiting: the stacks a hung-call report shows."""

from __future__ import annotations

import asyncio
import os
import traceback
from typing import Any

__all__ = ["task_stacks"]


def task_stacks(root: str | None) -> str:
    """Each asyncio task's stack, through every awaited coroutine; only the tasks
    inside files under ``root`` when it is given."""
    out = []
    for task in asyncio.all_tasks():
        frames = _coro_frames(task.get_coro())
        if root is not None and not any(
            f.f_code.co_filename.startswith(root + os.sep) for f in frames
        ):
            continue
        summary = [
            traceback.FrameSummary(f.f_code.co_filename, f.f_lineno, f.f_code.co_name)
            for f in frames
        ]
        out.append(f"task {task.get_name()}:\n" + "".join(traceback.format_list(summary)))
    return "\n".join(out) or "(no task is inside the plugin's code)"


def _coro_frames(coro: Any) -> list[Any]:
    """The frames of a suspended coroutine chain, outermost first (``Task.get_stack``
    gives only the outermost frame of a suspended coroutine)."""
    frames = []
    seen = 0
    while coro is not None and seen < 100:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        nxt = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if nxt is None and frame is not None:
            # the inline backend resumes a command through a helper that holds it as `coro`
            nxt = frame.f_locals.get("coro")
            if nxt is coro:
                nxt = None
        coro = nxt
    return frames
