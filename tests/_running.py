"""Start ``plugbay run`` as a real process, wait until its API answers, stop it after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    token: str
    state: Path
    output: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def plugbay_run(
    cwd: Path, *args: str, timeout: float = 60, expect_http: bool = True
) -> Iterator[Running]:
    """``plugbay run --http 127.0.0.1:0 --no-metrics ARGS`` in ``cwd``; SIGINT at the end."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    state = cwd / ".plugbay"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugbay.cli", "run", "--http", "127.0.0.1:0", "--no-metrics",
         *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            if "serving" in line:
                break
        assert any("serving" in line for line in lines), "".join(lines)
        url = json.loads((state / "host.json").read_text())["http"]
        assert (url is not None) == expect_http, "".join(lines)
        token = (state / "api-token").read_text().strip()
        yield Running(proc, url, token, state, "".join(lines))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
