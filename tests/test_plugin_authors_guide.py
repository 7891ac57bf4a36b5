"""docs/plugin-authors.md, run as written: every block in it, in order (tests/_docblocks.py),
and what each command prints is what the guide says."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests._docblocks import REPO, blocks, commands, environment, prepare, script, sections

GUIDE = REPO / "docs" / "plugin-authors.md"


def guide_commands() -> list[str]:
    return [
        line
        for block in blocks(GUIDE)
        if block.kind == "run" and block.lang == "sh"
        for line in commands(block.body)
    ]


def test_every_command_of_the_guide_is_run() -> None:
    text = "\n".join(guide_commands())
    for name in ("new", "validate", "docs", "debug", "build", "keygen", "sign", "trust",
                 "verify", "install", "run", "call"):  # fmt: skip
        assert f"plugbay {name}" in text, name
    assert "pytest" in text and "mypy" in text and "ruff check" in text
    # its Python programs run too (the embedding one, and events between two plugins);
    # the test excerpt is run by the generated tests
    kinds = [(b.lang, b.kind) for b in blocks(GUIDE) if b.lang == "python"]
    assert kinds == [("python", "not run"), ("python", "run"), ("python", "run")]


@pytest.mark.slow
def test_the_guide_works_as_written(tmp_path: Path) -> None:
    work = tmp_path / "work"
    prepare(GUIDE, work)
    result = subprocess.run(
        ["bash", "-c", script(blocks(GUIDE), tmp_path / "blocks")],
        cwd=work, env=environment(work), input="c\nc\nc\n", capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    said = sections(out)

    assert "created acme.greeter (utility)" in said["plugbay new --type utility acme.greeter"]
    assert " passed" in said["pytest -q"]
    assert "ok acme.greeter 0.1.0 (utility)" in said["plugbay validate ."]
    assert "Success: no issues found" in said["mypy"]
    assert "acme.greeter.md" in said["plugbay docs ."]
    debug = said["plugbay debug acme.greeter greet name=Ada --plugins .."]
    assert "(Pdb)" in debug and 'result: "Hello, Ada!"' in debug
    assert "built acme.greeter 0.1.0" in said["plugbay build ."]
    install = next(v for k, v in said.items() if k.startswith("plugbay install"))
    assert "verified acme.greeter 0.1.0 (signed by trusted key" in install
    assert "installed acme.greeter 0.1.0" in install
    verify = next(v for k, v in said.items() if k.startswith("plugbay verify"))
    assert "verified acme.greeter 0.1.0" in verify
    served = said["plugbay run --plugins plugins --metrics-port 0"]
    assert re.search(r"acme\.greeter\s*│\s*0\.1\.0\s*│\s*utility\s*│\s*active", served), served
    assert "serving; press Ctrl-C to stop" in served
    assert "Hello, Ada! Hello, Ada!" in said["plugbay call acme.greeter greet name=Ada times=2"]
    # the guide's program printed "ok" (after it, the host's log as it stopped)
    assert [v for k, v in said.items() if k.endswith(" python]")][-1].startswith("ok\n")
    assert list((work / "host" / ".plugbay" / "store").rglob("plugin.toml"))
    assert "stopped" in out
