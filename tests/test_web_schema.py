"""schemathesis against a running host: the API keeps to its own OpenAPI document.

It generates requests from the document (valid and invalid ones, and sequences
that follow its links) and runs every one of its checks on every answer: no
server error, a documented status, the documented content type, headers and body
schema (each server-sent event of the live stream included: schemathesis reads
one event of it, see schemathesis.toml below), invalid input rejected, and
schema-valid input accepted (each plugin's config body is in the document).
Bounded: a few hundred requests, well under two minutes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._running import plugbay_run
from tests.conftest import BUNDLED, PluginFactory

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b

    @command
    def echo(self, text: str, times: int = 1) -> list[str]:
        return [text] * max(0, min(times, 5))
"""


@pytest.mark.slow
def test_the_api_keeps_to_its_openapi_document(plugins: PluginFactory, tmp_path: Path) -> None:
    plugins("acme.calc", CALC, extra='[config.label]\ntype = "string"\ndefault = "x"\n')
    plugins("acme.user", extra='[dependencies]\n"acme.calc" = "^1"\n')
    shutil.copytree(BUNDLED / "core" / "system", plugins.root / "system")
    # the live stream never ends: read one event of it, as a dashboard reads the first
    (tmp_path / "schemathesis.toml").write_text("max-stream-events = 1\n")
    with plugbay_run(tmp_path) as host:
        result = subprocess.run(
            [
                str(SCHEMATHESIS), "run", f"{host.url}/openapi.json",
                "--header", f"Authorization: Bearer {host.token}",
                "--checks", "all", "--max-examples", "6", "--seed", "7", "--workers", "1",
                "--request-timeout", "20",
                # a profile samples for as long as it is asked (up to 300 s): its route
                # and its bounds are tested in test_profile_serving.py
                "--exclude-path-regex", "/profile$",
            ],
            capture_output=True, text=True, timeout=400, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert host.proc.poll() is None, "the host died under the generated requests"
    out = result.stdout
    assert result.returncode == 0, out[-6000:] + result.stderr[-2000:]
    summary = out.split("SUMMARY")[-1]
    assert "failed" not in summary and "Failures:" not in summary, out[-6000:]
    generated = int(re.search(r"(\d+) generated", summary).group(1))  # type: ignore[union-attr]
    assert 200 <= generated <= 2000, summary
    # every operation was reached, the stream and each plugin's own config path too
    tested = re.search(r"Tested: (\d+)", summary)
    selected = re.search(r"Selected: (\d+)/(\d+)", summary)
    assert tested and selected and tested.group(1) == selected.group(1)
    assert int(selected.group(2)) - int(selected.group(1)) == 1  # all but the profile route
