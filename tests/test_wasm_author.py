"""A Wasm plugin author's day (docs/wasm-plugins.md): what they see of their plugin
(``plugbay info`` of it running, ``plugbay docs``, ``plugbay validate``'s findings at
their line), what its strings and streams become, and what a module that sleeps,
spins, traps, overflows its stack, runs out of memory or answers something that is
not JSON is told, and when; the host serves on after each."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from plugbay.api.errors import PluginCrashed, PluginTimeout, ResourceLimitExceeded
from plugbay.runtime.host import Host
from tests import _wasm
from tests._cli import plugbay
from tests._running import plugbay_run
from tests._waiting import until

pytestmark = _wasm.needs_toolchain

PLUGIN = "acme.textstats"


def textstats(root: Path) -> Path:
    return _wasm.write_plugin(
        root / "textstats", PLUGIN, _wasm.template_source(), _wasm.template_manifest()
    )


def new_host(tmp_path: Path) -> Host:
    return Host(
        tmp_path / "plugins", state_dir=tmp_path / "state", entry_points=False, init_timeout=30
    )


def test_info_of_a_running_wasm_plugin_shows_its_sandbox(tmp_path: Path) -> None:
    textstats(tmp_path / "plugins")
    with plugbay_run(tmp_path, "--plugins", "plugins"):
        shown = plugbay("info", PLUGIN, cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Traceback" not in shown.stdout + shown.stderr
    text = " ".join(shown.stdout.split())
    assert "layers wasm, wasi-preopens, memory" in text
    assert "word_count(text: str) -> int" in text


async def test_control_characters_in_a_string_reach_the_module_as_sent(tmp_path: Path) -> None:
    textstats(tmp_path / "plugins")
    async with new_host(tmp_path) as host:
        text = "form\ffeed back\bspace tab\tnew\nline \x01"
        assert await host.call(PLUGIN, "shout", text=text) == text.upper() + "!"


def test_plugbay_docs_documents_the_commands_its_manifest_declares(tmp_path: Path) -> None:
    directory = textstats(tmp_path)
    written = plugbay("docs", ".", cwd=directory)
    assert written.returncode == 0, written.stdout + written.stderr
    page = (directory / "docs" / f"{PLUGIN}.md").read_text()
    assert "### `shout(text: str, suffix: str = '!') -> str`" in page
    assert "The text in capitals, with a suffix." in page
    assert "plugin.toml:" in page  # where it is declared
    assert (
        "shout(text: str, suffix: str = &#x27;!&#x27;) -&gt; str"
        in (directory / "docs" / f"{PLUGIN}.html").read_text()
    )


def test_a_mistake_in_a_declared_command_is_shown_at_its_line(tmp_path: Path) -> None:
    directory = tmp_path / "typo"
    directory.mkdir()
    (directory / "plugin.toml").write_text(
        'id = "acme.typo"\nversion = "1.0.0"\ntype = "utility"\nruntime = "wasm"\n'
        'entry = "build/plugin.wasm"\n\n[commands.add]\nparams = { a = "integer" }\n'
        'returns = "int"\n'
    )
    checked = plugbay("validate", str(directory), cwd=tmp_path)
    assert checked.returncode == 1
    assert "plugin.toml:8: error[manifest] command 'add' parameter 'a'" in checked.stdout
    assert 'params = { a = "integer" }' in checked.stdout  # the line, shown


def test_validate_warns_of_permissions_a_module_cannot_use(tmp_path: Path) -> None:
    directory = _wasm.write_plugin(
        tmp_path / "fetcher",
        "acme.fetcher",
        _wasm.template_source(),
        _wasm.template_manifest()
        + '\n[permissions]\nnetwork = ["api.example.com:443"]\nwrite = ["/tmp"]\n',
    )
    checked = plugbay("validate", str(directory), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout  # a warning, not an error
    text = " ".join(checked.stdout.split())
    assert "warning[permissions] asks for network:api.example.com:443, which a Wasm" in text
    assert "write:" not in text  # a granted path is preopened: that one it can use


#: a module that misbehaves on request, as an author's module does by mistake
SLEEPY = r"""
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "plugbay.h"

int pb_command(const char *name, pb_json params, pb_buf *out) {
    if (strcmp(name, "ping") == 0) { pb_puts(out, "\"pong\""); return 0; }
    if (strcmp(name, "nap") == 0) {
        long long ms = 0;
        pb_get_int(params, "ms", &ms);
        struct timespec wait = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&wait, NULL);
        return 0;
    }
    if (strcmp(name, "spin") == 0) { volatile int forever = 1; while (forever) {} }
    if (strcmp(name, "say") == 0) {
        printf("said on stdout\n");
        fflush(stdout);
        fprintf(stderr, "warned on stderr\n");
        return 0;
    }
    return pb_fail(out, "no such command");
}
"""
SLEEPY_COMMANDS = """
[commands.ping]
returns = "str"

[commands.nap]
params = { ms = "int" }
returns = "None"

[commands.spin]
returns = "None"

[commands.say]
returns = "None"

[resources]
timeout = 2
cpu-seconds = 0.3
"""


async def test_a_call_asleep_is_stopped_at_its_timeout_and_the_plugin_serves_on(
    tmp_path: Path,
) -> None:
    _wasm.write_plugin(tmp_path / "plugins" / "sleepy", "acme.sleepy", SLEEPY, SLEEPY_COMMANDS)
    async with new_host(tmp_path) as host:
        started = time.monotonic()
        with pytest.raises(PluginTimeout, match="within 2 s"):
            await host.call("acme.sleepy", "nap", ms=600_000)  # ten minutes
        assert time.monotonic() - started < 4  # its timeout, not its ten minutes
        started = time.monotonic()
        assert await host.call("acme.sleepy", "ping") == "pong"  # its thread is free again
        assert time.monotonic() - started < 2
        said = [r["message"] for r in host.logs("acme.sleepy", limit=50)]
        assert "timed out: 'nap' ran past its time limit" in said  # not a permission denied
        assert not [line for line in said if "permission denied" in line]


async def test_time_asleep_is_not_cpu_time(tmp_path: Path) -> None:
    _wasm.write_plugin(tmp_path / "plugins" / "sleepy", "acme.sleepy", SLEEPY, SLEEPY_COMMANDS)
    async with new_host(tmp_path) as host:
        # asleep for more than its 0.3 s of CPU time per call, well within its timeout
        assert await host.call("acme.sleepy", "nap", ms=800) is None
        started = time.monotonic()
        with pytest.raises(ResourceLimitExceeded, match=r"CPU time of 0\.3 s") as spun:
            await host.call("acme.sleepy", "spin")
        assert spun.value.details["limit"] == "cpu_seconds"
        assert time.monotonic() - started < 2  # stopped at its CPU bound, before its timeout
        assert await host.call("acme.sleepy", "ping") == "pong"


FAULTY = r"""
#include <string.h>
#include "plugbay.h"

static char table[1 << 20] = {1};  /* a plugin's data: 1 MiB of it */

static __attribute__((noinline)) void check_order(long long quantity) {
    if (quantity < 0) __builtin_trap();  /* an assert, as an author writes one */
}

static __attribute__((noinline)) int descend(int depth, volatile char *above) {
    char frame[1024];
    memset(frame, depth, sizeof frame);
    if (depth <= 0) return frame[0] + above[0];
    return descend(depth - 1, frame) * 3 + frame[depth % 1024];
}

int pb_command(const char *name, pb_json params, pb_buf *out) {
    long long n = 0;
    pb_get_int(params, "n", &n);
    if (strcmp(name, "order") == 0) { check_order(n); pb_puts(out, "\"ordered\""); return 0; }
    if (strcmp(name, "descend") == 0) {
        pb_printf(out, "%d", descend((int)n, table) + table[n % sizeof table]);
        return 0;
    }
    if (strcmp(name, "report") == 0) {  /* a result that outgrows its memory */
        char line[4096];
        memset(line, 'x', sizeof line);
        pb_put(out, "\"", 1);
        for (long long i = 0; i < n; i++) pb_put(out, line, sizeof line);
        pb_put(out, "\"", 1);
        return 0;
    }
    if (strcmp(name, "total") == 0) { pb_printf(out, "{total: %lld}", n); return 0; }
    return pb_fail(out, "no such command");
}
"""
FAULTY_COMMANDS = """
[commands.order]
params = { n = "int" }
returns = "str"

[commands.descend]
params = { n = "int" }
returns = "int"

[commands.report]
params = { n = "int" }
returns = "str"

[commands.total]
params = { n = "int" }
returns = "Any"

[resources]
memory = "16MiB"
"""


async def test_what_a_module_writes_to_stderr_is_logged_as_stderr(tmp_path: Path) -> None:
    _wasm.write_plugin(tmp_path / "plugins" / "sleepy", "acme.sleepy", SLEEPY, SLEEPY_COMMANDS)
    async with new_host(tmp_path) as host:
        await host.call("acme.sleepy", "say")

        def said() -> dict[str, dict[str, Any]] | None:
            records = {r["message"]: r for r in host.logs("acme.sleepy", limit=50)}
            return records if {"said on stdout", "warned on stderr"} <= records.keys() else None

        records = await until(said, "both lines in its log")
        out, err = records["said on stdout"], records["warned on stderr"]
        assert (out["level"], out["fields"]["stream"]) == (logging.INFO, "stdout")
        assert (err["level"], err["fields"]["stream"]) == (logging.WARNING, "stderr")
        assert err["logger"].endswith("acme.sleepy.stderr")


def faulty(tmp_path: Path) -> None:
    _wasm.write_plugin(tmp_path / "plugins" / "faulty", "acme.faulty", FAULTY, FAULTY_COMMANDS)


async def test_a_trap_says_in_which_function_it_happened(tmp_path: Path) -> None:
    faulty(tmp_path)
    async with new_host(tmp_path) as host:
        assert await host.call("acme.faulty", "order", n=2) == "ordered"
        with pytest.raises(PluginCrashed) as trapped:
            await host.call("acme.faulty", "order", n=-1)
        assert "trapped in 'order'" in str(trapped.value)
        assert "unreachable` instruction executed, in check_order ← pb_command" in str(
            trapped.value
        )


async def test_a_stack_overflow_traps_where_it_happens_and_says_so(tmp_path: Path) -> None:
    faulty(tmp_path)
    async with new_host(tmp_path) as host:
        assert await host.call("acme.faulty", "descend", n=8) is not None
        # 200 frames of 1 KiB: far past the 64 KiB stack, well within the 1 MiB of data
        # it would otherwise run into
        with pytest.raises(PluginCrashed) as overflowed:
            await host.call("acme.faulty", "descend", n=200)
        text = str(overflowed.value)
        assert "its stack overflowed" in text and "-Wl,-z,stack-size=BYTES" in text
        assert "descend (recursing)" in text  # the function that recursed
        await until(lambda: host.plugin("acme.faulty").state == "active", "its restart")
        assert await host.call("acme.faulty", "descend", n=8) is not None


async def test_a_result_that_is_not_json_is_shown_as_the_module_wrote_it(
    tmp_path: Path,
) -> None:
    faulty(tmp_path)
    async with new_host(tmp_path) as host:
        with pytest.raises(PluginCrashed) as broken:
            await host.call("acme.faulty", "total", n=3)
        assert "broke the plugbay ABI in 'total': its reply is not JSON" in str(broken.value)
        assert """'{"ok":{total: 3}}'""" in str(broken.value)  # what it wrote, to find it


async def test_running_out_of_memory_in_the_sdk_is_reported_as_the_memory_limit(
    tmp_path: Path,
) -> None:
    faulty(tmp_path)
    async with new_host(tmp_path) as host:
        assert len(await host.call("acme.faulty", "report", n=4)) == 4 * 4096
        # 32 MiB of result in a 16 MiB instance: the SDK's buffer cannot grow
        with pytest.raises(ResourceLimitExceeded) as refused:
            await host.call("acme.faulty", "report", n=8192)
        assert refused.value.details["limit"] == "memory"
        assert "ran out of memory in 'report'" in str(refused.value)
        assert (
            "under its memory limit, 16 MiB (set by its manifest's [resources] memory = '16MiB')"
            in str(refused.value)
        )
        assert "raise the memory limit where it is set" in str(refused.value)
        assert any(
            "out of memory" in r["message"] for r in host.logs("acme.faulty", limit=50)
        )  # its own log says it too
