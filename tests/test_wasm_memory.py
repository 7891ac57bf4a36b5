"""A Wasm plugin that runs out of its memory limit (``isolation._wasm_memory``) is told,
as a sandboxed process worker is, the limit's size, where it was set (its manifest's
``[resources] memory``, the host's ``[policy.limits]`` cap) and what to raise: a module
whose initial memory is above the limit, and one whose ``memory.grow`` fails and traps.
The neighbour serves on."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from plugbay.api.errors import ResourceLimitExceeded
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host

#: grows its memory 4 pages (256 KiB) at a time until a grow fails, then traps
GROWER = """(module (memory (export "memory") {pages})
  (func (export "plugbay_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "plugbay_free") (param i32 i32))
  (func (export "plugbay_init") (param i32 i32) (result i64) i64.const 0)
  (func (export "plugbay_call") (param i32 i32 i32 i32) (result i64)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 4)) (i32.const -1))))
    unreachable))"""
#: answers every call with 7 (``{"ok":7}`` at 2048)
ANSWERS = """(module (memory (export "memory") 1)
  (data (i32.const 2048) "{\\22ok\\22:7}")
  (func (export "plugbay_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "plugbay_free") (param i32 i32))
  (func (export "plugbay_init") (param i32 i32) (result i64) i64.const 0)
  (func (export "plugbay_call") (param i32 i32 i32 i32) (result i64)
    i64.const 0x0000080000000008))"""


def plugin(tmp_path: Path, plugin_id: str, wat: str, memory: str | None) -> None:
    root = tmp_path / "plugins" / plugin_id
    (root / "build").mkdir(parents=True)
    (root / "build" / "plugin.wasm").write_bytes(wasmtime.wat2wasm(wat))
    resources = f'[resources]\nmemory = "{memory}"\n' if memory else ""
    (root / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "1.0.0"\ntype = "utility"\nruntime = "wasm"\n'
        f'entry = "build/plugin.wasm"\n[commands.go]\nreturns = "int"\n{resources}'
    )


def new_host(tmp_path: Path, policy: IsolationPolicy | None = None) -> Host:
    return Host(
        tmp_path / "plugins",
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=30,
        policy=policy,
    )


async def test_a_module_whose_initial_memory_is_above_its_limit_names_both(
    tmp_path: Path,
) -> None:
    plugin(tmp_path, "acme.big", GROWER.format(pages=64), "2MiB")  # 4 MiB at start
    plugin(tmp_path, "acme.neighbour", ANSWERS, None)
    async with new_host(tmp_path) as host:
        record = host.plugin("acme.big")
        assert record.state == "failed"
        said = str(record.error)
        assert "initial linear memory, 64 pages (4 MiB), is above its memory limit" in said
        assert "2 MiB (set by its manifest's [resources] memory = '2MiB')" in said
        assert "raise the memory limit where it is set" in said
        assert "WasmtimeError" not in said
        assert await host.call("acme.neighbour", "go") == 7


async def test_a_grow_refused_at_the_manifests_limit_names_it(tmp_path: Path) -> None:
    plugin(tmp_path, "acme.grower", GROWER.format(pages=1), "4MiB")
    async with new_host(tmp_path) as host:
        with pytest.raises(ResourceLimitExceeded) as hit:
            await host.call("acme.grower", "go")
    said = str(hit.value)
    assert hit.value.details["limit"] == "memory"
    assert (
        "reached its memory limit, 4 MiB (set by its manifest's [resources] memory = '4MiB')"
        in said
    )
    assert hit.value.hint is not None
    assert "raise the memory limit where it is set" in hit.value.hint


async def test_a_grow_refused_at_the_policys_cap_names_the_cap(tmp_path: Path) -> None:
    # raising the manifest's ask would change nothing: the words name the cap
    plugin(tmp_path, "acme.grower", GROWER.format(pages=1), "64MiB")
    policy = IsolationPolicy.from_config(
        {"policy": {"limits": {"memory": "4MiB"}}}, where="plugbay.toml"
    )
    async with new_host(tmp_path, policy) as host:
        with pytest.raises(ResourceLimitExceeded) as hit:
            await host.call("acme.grower", "go")
    assert (
        "its memory limit, 4 MiB (set by the host's policy ([policy.limits] memory caps "
        "the 64MiB its manifest's [resources] memory asks for))"
    ) in str(hit.value)
