"""A plugin whose ``initialize`` raises is answered alike inline and sandboxed:
``plugin_init_failed``, "initialize raised <Type>: <message>", the line it raised at and
the hint to its traceback, on the host's record and over the HTTP API; a sandboxed one
was answered ``plugin_raised`` with a command's hint (seen in ``plugbay bisect``'s
``failed`` lines), and a load through the API 502 rather than 409."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import wasmtime

from plugbay.api.errors import PlugbayError
from plugbay.runtime.host import Host
from tests._served import api_served
from tests.conftest import PluginFactory

PING = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

FAILS = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context) -> None:
        raise RuntimeError("the wheel fell off")

    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.mark.parametrize("inline", [["*"], []], ids=["inline", "sandboxed"])
async def test_an_initialize_that_raises_is_plugin_init_failed_on_both_backends(
    plugins: PluginFactory, make_host: Callable[..., Host], inline: list[str]
) -> None:
    plugins("acme.ok", PING)
    path = plugins("acme.bad", FAILS)
    async with (
        make_host(inline=inline, init_timeout=30) as host,
        api_served(host) as (
            url,
            token,
        ),
    ):
        error = host.plugin("acme.bad").error
        assert error is not None
        assert error.code == "plugin_init_failed"
        assert error.message == "initialize raised RuntimeError: the wheel fell off"
        assert error.hint == "see the traceback with 'plugbay info acme.bad --traceback'"
        assert error.where == f"{path / 'main.py'}:6"
        assert error.details["exception"] == "RuntimeError"
        assert error.details["raised_at"]["code"] == 'raise RuntimeError("the wheel fell off")'
        assert 'raise RuntimeError("the wheel fell off")' in error.details["traceback"]
        assert await host.call("acme.ok", "ping") == "pong"  # the neighbour still answers

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            shown = (await http.get("/api/v1/plugins/acme.bad")).json()
            assert shown["error"]["code"] == "plugin_init_failed"
            assert shown["error"]["hint"] == error.hint
            # loaded again, the same answer, and the status of a start that failed
            again = await http.post("/api/v1/plugins/acme.bad/load")
            assert again.status_code == 409, again.text
            assert again.json()["error"]["code"] == "plugin_init_failed"
            assert (await http.post("/api/v1/plugins/acme.ok/commands/ping", json={})).json() == {
                "result": "pong"
            }


CONSTRUCTOR_FAILS = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    def __init__(self) -> None:
        super().__init__()
        raise RuntimeError("the wheel fell off")

    @command
    def ping(self) -> str:
        return "pong"
"""

IMPORT_FAILS = """
from plugbay import UtilityPlugin, command
raise RuntimeError("the wheel fell off")

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""

IMPORTS_MISSING = """
from plugbay import UtilityPlugin, command
import acme_package_nobody_installed

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return "pong"
"""


@pytest.mark.parametrize("inline", [["*"], []], ids=["inline", "sandboxed"])
async def test_a_constructor_or_module_that_raises_is_answered_alike_on_both_backends(
    plugins: PluginFactory, make_host: Callable[..., Host], inline: list[str]
) -> None:
    """Inline, a raising ``__init__`` was "could not be started: …" with no hint, line or
    exception; in a worker "loading raised …". A module that raised at import was
    ``plugin_load_failed`` on both, but a worker's carried ``raised_by`` (a load through
    the API answered 502, inline 409) and neither named the exception or its line."""
    plugins("acme.ok", PING)
    ctor = plugins("acme.ctor", CONSTRUCTOR_FAILS)
    module = plugins("acme.module", IMPORT_FAILS)
    missing = plugins("acme.missing", IMPORTS_MISSING)
    async with (
        make_host(inline=inline, init_timeout=30) as host,
        api_served(host) as (url, token),
    ):
        error = host.plugin("acme.ctor").error
        assert error is not None
        assert error.code == "plugin_init_failed"
        assert error.message == "constructing P raised RuntimeError: the wheel fell off"
        assert error.hint == "see the traceback with 'plugbay info acme.ctor --traceback'"
        assert error.where == f"{ctor / 'main.py'}:7"
        assert set(error.details) == {"exception", "raised_at", "traceback"}
        assert error.details["exception"] == "RuntimeError"
        assert error.details["raised_at"]["function"] == "__init__"
        assert error.details["raised_at"]["code"] == 'raise RuntimeError("the wheel fell off")'

        error = host.plugin("acme.module").error
        assert error is not None
        assert error.code == "plugin_load_failed"
        assert error.message == "importing 'main' raised RuntimeError: the wheel fell off"
        assert error.hint == (
            "fix the error at module level; see the traceback with "
            "'plugbay info acme.module --traceback'"
        )
        assert error.where == f"{module / 'main.py'}:3"
        assert set(error.details) == {"exception", "raised_at", "traceback"}
        assert error.details["raised_at"]["line"] == 3

        error = host.plugin("acme.missing").error
        assert error is not None
        assert error.code == "plugin_load_failed"
        assert error.message == (
            "importing 'main' failed: no module named 'acme_package_nobody_installed'"
        )
        assert error.hint is not None and error.hint.startswith("install that package")
        assert error.where == f"{missing / 'main.py'}:3"
        assert set(error.details) == {"traceback"}

        assert await host.call("acme.ok", "ping") == "pong"  # the neighbour still answers
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            for plugin_id, code in [
                ("acme.ctor", "plugin_init_failed"),
                ("acme.module", "plugin_load_failed"),
            ]:
                again = await http.post(f"/api/v1/plugins/{plugin_id}/load")
                assert again.status_code == 409, again.text  # the start failed, not a plugin
                assert again.json()["error"]["code"] == code
                assert "raised_by" not in again.json()["error"]["details"]
            answer = await http.post("/api/v1/plugins/acme.ok/commands/ping", json={})
            assert answer.json() == {"result": "pong"}


WASM_MODULE = """(module (memory (export "memory") 1)
  {start}
  (func (export "plugbay_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "plugbay_free") (param i32 i32))
  (func (export "plugbay_init") (param i32 i32) (result i64) i64.const 0)
  (func (export "plugbay_call") (param i32 i32 i32 i32) (result i64) i64.const 0))"""


def _trapping_module(plugins: PluginFactory, start: str) -> Path:
    """Plugin ``acme.trap``: the Wasm module of ``WASM_MODULE`` with ``start``; its root."""
    root = plugins.root / "acme.trap"
    (root / "build").mkdir(parents=True)
    (root / "build" / "plugin.wasm").write_bytes(wasmtime.wat2wasm(WASM_MODULE.format(start=start)))
    (root / "plugin.toml").write_text(
        'id = "acme.trap"\nversion = "1.0.0"\ntype = "utility"\nruntime = "wasm"\n'
        'entry = "build/plugin.wasm"\n[commands.go]\nreturns = "int"\n'
    )
    return root


@pytest.mark.parametrize(
    ("start", "trapped_in"),
    [
        ('(func (export "_initialize") unreachable)', "in function 0"),  # a WASI reactor's
        ("(func $begin unreachable) (start $begin)", "in begin"),  # the module's start
    ],
    ids=["_initialize", "start-function"],
)
async def test_a_wasm_module_that_traps_as_it_starts_is_plugin_init_failed(
    plugins: PluginFactory,
    make_host: Callable[..., Host],
    start: str,
    trapped_in: str,
) -> None:
    """A trap in ``_initialize`` was ``plugin_crashed`` ("the instance is replaced": it
    never ran), one in the module's start function "initialize raised Trap: error while
    executing at wasm backtrace: …" with the host's own traceback; both are the plugin
    that could not be started, naming its module and the trap."""
    plugins("acme.ok", PING)
    root = _trapping_module(plugins, start)
    async with make_host(inline=["acme.ok"], init_timeout=30) as host:
        error = host.plugin("acme.trap").error
        assert error is not None
        assert error.code == "plugin_init_failed"
        assert error.message == (
            f"plugin.wasm trapped as it started: wasm `unreachable` instruction executed, "
            f"{trapped_in}"
        )
        assert error.where == str(root / "build" / "plugin.wasm")
        assert error.hint is not None and "rebuild it with 'plugbay build'" in error.hint
        assert error.details == {"trap": error.message.split(": ", 1)[1]}
        assert await host.call("acme.ok", "ping") == "pong"  # the neighbour still answers


def _address_space() -> int:
    """This process's address space in bytes (``VmSize``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(
    "start",
    ['(func (export "_initialize") unreachable)', "(func $begin unreachable) (start $begin)"],
    ids=["_initialize", "start-function"],
)
async def test_a_wasm_module_that_traps_as_it_starts_leaves_no_store_behind(
    plugins: PluginFactory, make_host: Callable[..., Host], start: str
) -> None:
    """A store's host functions hold it (a cycle through wasmtime the collector cannot
    see): a start that trapped kept its store, and with it the memory reservation of
    GiBs of address space, for the process's life. A later sandbox limited by address
    space (a worker forked from such a process) then had none of its budget left."""
    _trapping_module(plugins, start)
    plugins("acme.ok", PING)
    async with make_host(inline=["acme.ok"], init_timeout=30) as host:
        before = _address_space()  # the host started: its engine and caches made
        for _ in range(3):
            with contextlib.suppress(PlugbayError):
                await host.load("acme.trap")
            assert host.plugin("acme.trap").error is not None
        gc.collect()
        grown = _address_space() - before
        assert grown < 512 * 2**20, f"{grown / 2**30:.1f} GiB of address space kept"
        assert await host.call("acme.ok", "ping") == "pong"
