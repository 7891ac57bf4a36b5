"""``plugbay docs`` (Markdown and HTML from manifest and code) and ``plugbay debug`` (pdb)."""

from __future__ import annotations

import html
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from plugbay.pdk import PdkError, create_plugin, generate_docs
from tests._cli import plugbay
from tests.conftest import BUNDLED, PluginFactory


def test_docs_describe_everything_from_manifest_and_code(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.doc",
        '''
        from typing import Literal
        from plugbay import SystemPlugin, command

        class P(SystemPlugin):
            """Keeps an eye on <things> & reports."""

            priority = 5

            @command(blocking=True, timeout=2.5)
            def scan(self, path: str, depth: int = 3, mode: Literal["fast", "deep"] = "fast") -> list[str]:
                """Scan ``path`` down to ``depth`` levels.

                Returns the names found.
                """
                return []

            @command
            async def ping(self) -> str:
                return "pong"
        ''',
        type="system",
        extra="""
        name = "Watcher"
        description = "Watches files."
        capabilities = ["watching", "files"]
        authors = ["Ada"]
        license = "MIT"

        [dependencies]
        "acme.base" = "^1.2"

        [optional-dependencies]
        "acme.extra" = "*"

        [services]
        provides = { watch = "1.0.0" }
        requires = { store = "^2" }

        [config.interval]
        type = "number"
        default = 1.5
        minimum = 0.1
        description = "Seconds between scans."

        [config.mode]
        type = "string"
        enum = ["a", "b"]
        required = true

        [permissions]
        read = ["/var/log"]
        subprocess = true

        [resources]
        memory = "64MiB"
        timeout = 5
        """,
    )
    out = plugbay("docs", str(d), "--out", str(d / "out"), cwd=d)
    assert out.returncode == 0, out.stderr
    md = (d / "out" / "acme.doc.md").read_text()
    page = (d / "out" / "acme.doc.html").read_text()
    for text in (
        "# Watcher — `acme.doc` 1.0.0",
        "Watches files.",
        "| **type** | system |",
        "| **capabilities** | watching, files |",
        "| **priority** | 5 |",
        "| **authors** | Ada |",
        "### `scan(path: str, depth: int = 3, mode: Literal['fast', 'deep'] = 'fast') -> list[str]`",
        "*sync, blocking=True, timeout=2.5*",
        "Scan ``path`` down to ``depth`` levels.",
        "Returns the names found.",
        "| `depth` | `int` | `3` |",
        "| `path` | `str` | required |",
        "### `ping() -> str`",
        "*async*",
        "| `interval` | number | 1.5 | >= 0.1 | Seconds between scans. |",
        '| `mode` | string | — | one of "a", "b"; required |',
        "| `acme.base` | `^1.2` | no |",
        "| `acme.extra` | `*` | yes |",
        "| `watch` | provides | `1.0.0` |",
        "| `store` | requires | `^2` |",
        "- `read:/var/log`",
        "- `subprocess`",
        "| memory | 64MiB |",
        "| timeout | 5.0 |",
    ):
        assert text in md, text
    assert "<!doctype html>" in page and "<title>acme.doc 1.0.0</title>" in page
    assert "Keeps an eye on &lt;things&gt; &amp; reports." in page
    assert (
        html.escape("scan(path: str, depth: int = 3, mode: Literal['fast', 'deep'] = 'fast')")
        in page
    )
    assert "<code>path</code>" in page and "Seconds between scans." in page
    assert "<li><code>subprocess</code></li>" in page


def test_docs_for_a_generated_package_and_bundled_plugins(tmp_path: Path) -> None:
    package = create_plugin("integration", "acme.link", tmp_path / "link")
    docs = generate_docs(package)
    assert [c.name for c in docs.commands] == ["close", "last_check", "open", "send", "transcript"]
    assert "- `network:127.0.0.1:7000`" in docs.markdown
    assert "| **protocol** | 'tcp-lines' |" in docs.markdown
    # what it emits and hears, and how it is delivered to it
    assert "| `acme.link.exchanged` | emits |  |" in docs.markdown
    assert "| `acme.link.exchanged` | listens | priority 100, queue 1000, drop-oldest |" in (
        docs.markdown
    )
    assert "Starts with the host." in docs.markdown
    assert "<h2 id='events'>Events</h2>" in docs.html
    formatters = generate_docs(BUNDLED / "utility" / "formatters").markdown
    assert "### `wrap(text: str, width: int | None = None) -> str`" in formatters
    assert "| `formatting` | provides | `1.2.0` |" in formatters


def test_docs_of_something_that_is_not_a_plugin(tmp_path: Path) -> None:
    with pytest.raises(
        PdkError, match=r"cannot document it: no plugin\.toml or pyproject\.toml here"
    ):
        generate_docs(tmp_path)
    result = plugbay("docs", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1 and "cannot document it" in result.stderr
    assert list(tmp_path.iterdir()) == []


def debug(*args: str, cwd: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugbay.cli", "debug", *args],
        cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )  # fmt: skip


@pytest.fixture
def calc(plugins: PluginFactory) -> Path:
    plugins(
        "acme.calc",
        '''
        from plugbay import PluginContext, UtilityPlugin, command

        class P(UtilityPlugin):
            async def initialize(self, context: PluginContext) -> None:
                self.offset = context.config["offset"]

            @command
            async def add(self, a: int, b: int = 1) -> int:
                """Add."""
                total = a + b
                return total + self.offset
        ''',
        extra='isolation = "process"\n\n[config.offset]\ntype = "integer"\ndefault = 100\n',
    )
    return plugins.root.parent


def test_debug_stops_in_the_command_with_its_real_context(calc: Path) -> None:
    """A process-isolated plugin runs inline here, with its config; pdb steps through."""
    result = debug(
        "acme.calc", "add", "a=2", "b=3", cwd=calc, stdin="p a, b\nn\np total\np self.offset\nc\n"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "acme.calc 1.0.0 is active inline" in out
    assert "(Pdb) (2, 3)" in out
    assert "-> total = a + b" in out
    assert "(Pdb) 5" in out and "(Pdb) 100" in out
    assert "result: 105" in out


def test_debug_without_stopping(calc: Path) -> None:
    result = debug("acme.calc", "add", "a=1", "--no-break", cwd=calc, stdin="")
    assert result.returncode == 0, result.stderr
    assert "(Pdb)" not in result.stdout and "result: 102" in result.stdout


def test_debug_an_unknown_plugin_or_command(calc: Path) -> None:
    result = debug("acme.nope", "add", cwd=calc, stdin="")
    assert result.returncode == 1 and "no plugin 'acme.nope' is found" in result.stderr
    result = debug("acme.calc", "mul", cwd=calc, stdin="")
    assert result.returncode == 1 and "mul" in result.stderr


def test_develop_commands_are_grouped_in_help(tmp_path: Path) -> None:
    result = plugbay("--help", cwd=tmp_path)
    develop = result.stdout.split("develop", 1)[1]
    for name in (
        "new",
        "validate",
        "build",
        "keygen",
        "sign",
        "verify",
        "trust",
        "docs",
        "debug",
        "profile",  # the monitoring issue's, filed under develop by pdk.cli.register
    ):
        assert f"│ {name} " in develop, name
    assert "│ run " not in develop


def test_the_spec_interface(tmp_path: Path) -> None:
    from plugbay.pdk.kit import PDK

    pdk = PDK()
    assert [t.name for t in pdk.templates] == ["utility", "system", "integration", "extension"]
    path = pdk.create_plugin("extension", "acme.spec", tmp_path / "spec")
    assert pdk.validate_plugin(path).ok
    assert "### `count_words(text: str) -> WordCount`" in pdk.generate_docs(path).markdown
    assert pdk.tools.profiler is None


def test_debug_serves_and_breakpoint_stops_in_pdb(plugins: PluginFactory) -> None:
    """Without a command the plugin serves; a breakpoint() in its own code stops in pdb."""
    plugins(
        "acme.ticker",
        """
        import asyncio
        from plugbay import PluginContext, UtilityPlugin

        class P(UtilityPlugin):
            async def initialize(self, context: PluginContext) -> None:
                self.task = asyncio.get_running_loop().create_task(self.tick())

            async def tick(self) -> None:
                await asyncio.sleep(0.1)
                answer = 6 * 7
                breakpoint()
                print("ticked", answer, flush=True)
        """,
    )
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("PYTHONBREAKPOINT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugbay.cli", "debug", "acme.ticker"],
        cwd=plugins.root.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    watchdog = threading.Timer(60, proc.kill)  # a test never hangs on a silent pdb
    watchdog.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("p answer\nc\n")
        proc.stdin.flush()
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if "ticked 42" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + out
    assert "serving; a breakpoint() in the plugin's code stops here in pdb" in text
    assert "(Pdb) 42" in text and "ticked 42" in text
    assert proc.returncode == 0, err


def test_literal_blocks_stay_literal_in_html() -> None:
    page = generate_docs(BUNDLED / "integration" / "protocol").html
    assert "<pre>HELLO &lt;name&gt;   →  WELCOME &lt;name&gt; plugbay-line/1\nPING" in page
