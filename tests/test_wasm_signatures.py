"""A module whose ABI exports or ``plugbay.*`` imports have the wrong types
(``isolation._wasm_signatures``) is refused by ``plugbay validate`` and as it starts,
with the export or import and both types named, instead of trapping at its first call
as "a bug in the module (or an attack)" or failing in wasmtime's linker; a neighbour
serves on."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from plugbay.runtime.host import Host
from tests._cli import plugbay

ABI_EXPORTS = """
  (memory (export "memory") 1)
  (data (i32.const 16) "{\\"ok\\":3}")
  (func (export "plugbay_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "plugbay_free") (param i32 i32))
  (func (export "plugbay_init") (param i32 i32) (result i64) i64.const 0)"""
GOOD_CALL = """
  (func (export "plugbay_call") (param i32 i32 i32 i32) (result i64)
    i64.const 0x0000001000000008)"""


def write_module(root: Path, plugin_id: str, wat: str) -> Path:
    directory = root / plugin_id.replace(".", "-")
    (directory / "build").mkdir(parents=True)
    (directory / "build" / "plugin.wasm").write_bytes(wasmtime.wat2wasm(wat))
    (directory / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "1.0.0"\ntype = "utility"\nruntime = "wasm"\n'
        'entry = "build/plugin.wasm"\n\n[commands.add]\nparams = { a = "int", b = "int" }\n'
        'returns = "int"\n'
    )
    return directory


MISTAKES = [
    pytest.param(
        f"""(module {ABI_EXPORTS}
          (func (export "plugbay_call") (param i32 i32) (result i32) i32.const 0))""",
        "the module's export plugbay_call has the type (i32, i32) -> i32, the ABI's is "
        "(cmd: i32, cmd_len: i32, ptr: i32, len: i32) -> i64",
        id="export",
    ),
    pytest.param(
        f"""(module (import "plugbay" "storage" (func (param i32))) {ABI_EXPORTS} {GOOD_CALL})""",
        "the module imports plugbay.storage with the type (i32) -> (), the host's is "
        "(ptr: i32, len: i32) -> i64",
        id="import",
    ),
]


@pytest.mark.parametrize(("wat", "words"), MISTAKES)
def test_validate_names_an_abi_function_of_the_wrong_type(
    tmp_path: Path, wat: str, words: str
) -> None:
    directory = write_module(tmp_path, "acme.wrong", wat)
    shown = plugbay("validate", str(directory), cwd=tmp_path)
    text = " ".join((shown.stdout + shown.stderr).split())
    assert shown.returncode == 1, text
    assert words in text
    assert "docs/wasm-plugins.md" in text and "Traceback" not in text


@pytest.mark.parametrize(("wat", "words"), MISTAKES)
async def test_a_module_of_the_wrong_types_does_not_start_and_says_why(
    tmp_path: Path, wat: str, words: str
) -> None:
    write_module(tmp_path / "plugins", "acme.wrong", wat)
    write_module(tmp_path / "plugins", "acme.right", f"(module {ABI_EXPORTS} {GOOD_CALL})")
    async with Host(tmp_path / "plugins", state_dir=tmp_path / "state", entry_points=False) as host:
        record = host.plugin("acme.wrong")
        assert record.state == "failed"
        assert words in (record.reason or "")
        assert "WasmtimeError" not in (record.reason or "")
        assert await host.call("acme.right", "add", a=1, b=2) == 3


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(b"int x;\n", "it begins b'int x;\\n'", id="c-source"),
        pytest.param(b"", "it is empty", id="empty"),
    ],
)
def test_an_entry_that_is_not_a_wasm_binary_is_named_as_such(
    tmp_path: Path, content: bytes, words: str
) -> None:
    directory = write_module(tmp_path, "acme.wrong", f"(module {ABI_EXPORTS} {GOOD_CALL})")
    (directory / "build" / "plugin.wasm").write_bytes(content)
    shown = plugbay("validate", str(directory), cwd=tmp_path)
    text = " ".join((shown.stdout + shown.stderr).split())
    assert shown.returncode == 1, text
    assert f"plugin.wasm is not a WebAssembly binary ({words})" in text
    assert "the manifest's entry must name the module 'plugbay build' writes" in text
    assert "expected `(`" not in text
