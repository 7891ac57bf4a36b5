"""docs/plugin-authors.md, run as written: every shell command in it, in order."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugin-authors.md"


def commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def programs() -> list[str]:
    """The guide's Python programs. A block that defines a pytest test is an excerpt of the
    generated plugin's tests, which the guide's own `pytest -q` step runs."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    return [block for block in blocks if not block.lstrip().startswith("def test_")]


@pytest.mark.parametrize("index", range(len(programs())))
def test_every_python_program_of_the_guide_runs(index: int, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", programs()[index]],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")


def script(lines: list[str]) -> str:
    """One bash script: each command echoed, then run; 'plugbay run' in the background
    until the host says it serves, stopped with Ctrl-C (SIGINT) at the end."""
    out = ["set -euo pipefail", "HOST_PID="]
    for line in lines:
        out.append(f"echo {shlex.quote('>>> ' + line)}")
        if line.startswith("plugbay run"):
            out += [
                f"{line} > run.log 2>&1 &",
                "HOST_PID=$!",
                "for i in $(seq 1 200); do grep -q serving run.log && break; sleep 0.1; done",
                "cat run.log",
            ]
        else:
            out.append(line)
    out += [
        'if [ -n "$HOST_PID" ]; then kill -INT "$HOST_PID"; wait "$HOST_PID"; cat run.log; fi',
    ]
    return "\n".join(out) + "\n"


def test_every_command_of_the_guide_is_run() -> None:
    text = "\n".join(commands())
    for name in ("new", "validate", "docs", "debug", "build", "keygen", "sign", "trust",
                 "verify", "install", "run", "call"):  # fmt: skip
        assert f"plugbay {name}" in text, name
    assert "pytest" in text and "mypy" in text and "ruff check" in text


@pytest.mark.slow
def test_the_guide_works_as_written(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "MYPY_CACHE_DIR": str(tmp_path / ".mypy_cache"),
    }
    env.pop("PLUGBAY_PLUGINS", None)
    env.pop("PLUGBAY_STATE", None)
    result = subprocess.run(
        ["bash", "-c", script(commands())],
        cwd=tmp_path, env=env, input="c\nc\nc\n", capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    sections = dict(re.findall(r">>> (.*?)\n(.*?)(?=>>> |\Z)", out, re.S))

    assert "created acme.greeter (utility)" in sections["plugbay new --type utility acme.greeter"]
    assert " passed" in sections["pytest -q"]
    assert "ok acme.greeter 0.1.0 (utility)" in sections["plugbay validate ."]
    assert "Success: no issues found" in sections["mypy"]
    assert "acme.greeter.md" in sections["plugbay docs ."]
    debug = sections["plugbay debug acme.greeter greet name=Ada --plugins .."]
    assert "(Pdb)" in debug and 'result: "Hello, Ada!"' in debug
    assert "built acme.greeter 0.1.0" in sections["plugbay build ."]
    install = next(v for k, v in sections.items() if k.startswith("plugbay install"))
    assert "verified acme.greeter 0.1.0 (signed by trusted key" in install
    assert "installed acme.greeter 0.1.0" in install
    verify = next(v for k, v in sections.items() if k.startswith("plugbay verify"))
    assert "verified acme.greeter 0.1.0" in verify
    served = sections["plugbay run --plugins plugins --metrics-port 0"]
    assert re.search(r"acme\.greeter\s*│\s*0\.1\.0\s*│\s*utility\s*│\s*active", served), served
    assert "serving; press Ctrl-C to stop" in served
    assert "Hello, Ada! Hello, Ada!" in sections["plugbay call acme.greeter greet name=Ada times=2"]
    assert list((tmp_path / "host" / ".plugbay" / "store").rglob("plugin.toml"))
    assert "stopped" in out
