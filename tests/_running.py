"""Start ``plugbay run`` as a real process, wait until its API answers, stop it after."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests._cli import cli_env


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    token: str
    state: Path
    output: str
    #: every line the host printed so far, start included (read by a thread as it comes)
    lines: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def plugbay_run(
    cwd: Path, *args: str, timeout: float = 60, expect_http: bool = True
) -> Iterator[Running]:
    """``plugbay run --http 127.0.0.1:0 --no-metrics ARGS`` in ``cwd``; SIGINT at the end."""
    env = cli_env()
    state = cwd / ".plugbay"
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugbay.cli", "run", "--http", "127.0.0.1:0", "--no-metrics",
         *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    drain: threading.Thread | None = None
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
        # no API (--no-http): no token
        token = (state / "api-token").read_text().strip() if expect_http else ""
        # keep reading what the host prints: a pipe nobody reads fills (64 KiB) and the
        # host's next print would block its event loop mid-test
        drain = threading.Thread(target=_drain, args=(proc, lines), daemon=True)
        drain.start()
        yield Running(proc, url, token, state, "".join(lines), lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if drain is not None:
            drain.join(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        else:
            proc.communicate()


def _drain(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
