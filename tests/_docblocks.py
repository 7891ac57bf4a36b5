"""The fenced code blocks of README.md and docs/*.md, and one script that runs a document's.

Each document runs in a directory of its own, its blocks in order, as one bash script:

* ``python``: executed (top-level ``await`` allowed). After ``<!-- doc: host -->`` it runs
  with ``host``, a started :class:`plugbay.Host` on the directory's ``plugins/``.
* ``toml``: validated: a manifest by the manifest model, anything else as the host
  config (``plugbay.toml``) the host reads.
* ``sh``: each line run, echoed as ``>>> LINE``; ``plugbay run …`` in the background until
  it serves, stopped with Ctrl-C at the end of the script. ``.venv/bin/plugbay`` works as
  written (``.venv`` links to this interpreter's environment).
* ``json``: parsed.
* ``<!-- doc: file=PATH -->`` before a block writes it to PATH first (then a python file
  is compiled and a manifest validated; it runs when a later block uses it).
* ``<!-- doc: not run: REASON -->`` before a block: not run, and counted with its reason.
* ``text`` and blocks without a language are output and diagrams, not code.

``<!-- doc: setup=bundled -->`` anywhere in a document copies the bundled plugins (not
``integration.protocol``, which listens on a fixed TCP port) into its ``plugins/`` first;
``setup=libdemo-wheels`` writes ``wheels/`` with ``libdemo`` 1.0 and 2.0.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "_docrun.py"

#: the documents whose blocks run
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

RUN_LANGS = {"python", "toml", "sh", "json"}
OUTPUT_LANGS = {"", "text"}

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<lang>[\w+-]*)[^\n]*$")
_MARK = re.compile(r"<!--\s*doc:\s*(?P<what>.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    lang: str
    body: str
    file: str | None = None
    host: bool = False
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    @property
    def kind(self) -> str:
        """ "run", "not run", "output" or "unmarked" (an error: say what to do with it)."""
        if self.not_run is not None:
            return "not run"
        if self.lang in OUTPUT_LANGS:
            return "output"
        return "run" if self.lang in RUN_LANGS else "unmarked"


def blocks(doc: Path) -> list[Block]:
    """Every fenced block of ``doc``, with the marker written just before it."""
    lines = doc.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        marker = _marker_before(lines, i)
        lang = {"bash": "sh", "shell": "sh", "console": "sh", "py": "python"}.get(
            opening["lang"], opening["lang"]
        )
        found.append(_block(doc, i + 1, lang, body, marker))
        i = end + 1
    return found


def _marker_before(lines: list[str], at: int) -> str | None:
    j = at - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j >= 0:
        mark = _MARK.search(lines[j])
        if mark is not None and not mark["what"].startswith("setup="):
            return mark["what"]
    return None


def _block(doc: Path, line: int, lang: str, body: str, marker: str | None) -> Block:
    if marker is None:
        return Block(doc, line, lang, body)
    if marker.startswith("not run:"):
        return Block(doc, line, lang, body, not_run=marker.removeprefix("not run:").strip())
    if marker.startswith("file="):
        return Block(doc, line, lang, body, file=marker.removeprefix("file=").strip())
    if marker == "host":
        return Block(doc, line, lang, body, host=True)
    raise ValueError(f"{doc}:{line}: unknown marker <!-- doc: {marker} -->")


def setups(doc: Path) -> list[str]:
    return re.findall(r"<!--\s*doc:\s*setup=(\S+)\s*-->", doc.read_text())


def prepare(doc: Path, work: Path) -> None:
    """The directory a document runs in: ``.venv`` linked, its setups done."""
    work.mkdir(parents=True, exist_ok=True)
    (work / ".venv").mkdir(exist_ok=True)
    link = work / ".venv" / "bin"
    if not link.exists():
        link.symlink_to(Path(sys.executable).parent)
    if "libdemo-wheels" in setups(doc):
        from tests._wheels import libdemo

        for version in ("1.0", "2.0"):
            libdemo(work / "wheels", version)
    if "bundled" in setups(doc):
        shutil.copytree(
            REPO / "plugins", work / "plugins", dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "integration"),
        )  # fmt: skip


def environment(work: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "MYPY_CACHE_DIR": str(work / ".mypy_cache"),
    }
    for name in ("PLUGBAY_PLUGINS", "PLUGBAY_STATE", "PLUGBAY_CONFIG"):
        env.pop(name, None)
    return env


def script(doc_blocks: list[Block], scratch: Path) -> str:
    """One bash script running every block of a document that runs, in order. Each
    block's body is kept under ``scratch`` (outside the working directory)."""
    scratch.mkdir(parents=True, exist_ok=True)
    out = ["set -euo pipefail", "HOST_PID=", "DOCS_TOP=$PWD"]
    runner = shlex.quote(str(RUNNER))
    for n, block in enumerate(doc_blocks):
        if block.kind != "run":
            continue
        out.append(f"echo {shlex.quote(f'>>> [block {block.where} {block.lang}]')}")
        body = scratch / f"block-{n}.{block.lang}"
        body.write_text(block.body)
        source = shlex.quote(str(body))
        if block.file is not None:
            target = shlex.quote(block.file)
            out += [f'mkdir -p "$(dirname {target})"', f"cp {source} {target}"]
            if block.lang in ("python", "toml"):
                out.append(f"python {runner} check-{block.lang} {target}")
        elif block.lang == "python":
            out.append(f"python {runner} python {source}" + (" --host" if block.host else ""))
        elif block.lang == "toml":
            out.append(f"python {runner} check-toml {source}")
        elif block.lang == "json":
            out.append(f"python {runner} check-json {source}")
        else:
            out += _shell(block.body)
    out.append(
        # Ctrl-C: plugbay run stops cleanly, then exits 130 (docs/cli.md)
        'if [ -n "$HOST_PID" ]; then kill -INT "$HOST_PID"; '
        'wait "$HOST_PID" || [ $? -eq 130 ]; cat "$DOCS_TOP/run.log"; fi'
    )
    return "\n".join(out) + "\n"


def _shell(body: str) -> list[str]:
    out: list[str] = []
    for line in commands(body):
        out.append(f"echo {shlex.quote('>>> ' + line)}")
        if re.match(r"^(\.venv/bin/)?plugbay run\b", line) and not line.rstrip().endswith("&"):
            out += [
                f'{line} > "$DOCS_TOP/run.log" 2>&1 &',
                "HOST_PID=$!",
                'for i in $(seq 1 300); do grep -q serving "$DOCS_TOP/run.log" && break; '
                "sleep 0.1; done",
                'cat "$DOCS_TOP/run.log"',
            ]
        else:
            out.append(line)
    return out


def commands(body: str) -> list[str]:
    """The body's commands, one a line (a trailing backslash continues a line), without
    their comments."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [
        _uncommented(line)
        for line in joined.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _uncommented(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` inside quotes stays)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def sections(output: str) -> dict[str, str]:
    """What each echoed line or block printed, by the line (``>>> LINE``)."""
    return dict(re.findall(r">>> (.*?)\n(.*?)(?=>>> |\Z)", output, re.S))
