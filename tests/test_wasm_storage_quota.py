"""A Wasm plugin's storage quota (``[resources] storage``) bounds its ``context.storage``:
the store is kept by the host, beside no mounted image, so the store itself keeps
within the quota, as a Ray plugin's does, and a write past it is refused with
``StorageFull`` while what was stored before stays, and a neighbour keeps its data."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbay.api.errors import StorageFull
from plugbay.runtime.host import Host
from tests import _wasm

pytestmark = _wasm.needs_toolchain

SMALL = "acme.small"
ROOMY = "acme.roomy"


def plugin(root: Path, plugin_id: str, storage: str) -> None:
    manifest = _wasm.template_manifest().replace(
        "[resources]\n", f'[resources]\nstorage = "{storage}"\n', 1
    )
    _wasm.write_plugin(root / plugin_id, plugin_id, _wasm.template_source(), manifest)


async def test_a_value_past_its_storage_quota_is_refused_and_the_store_kept(
    tmp_path: Path,
) -> None:
    plugin(tmp_path / "plugins", SMALL, "64KiB")
    plugin(tmp_path / "plugins", ROOMY, "16MiB")
    big = "x" * 100_000
    host = Host(tmp_path / "plugins", state_dir=tmp_path / "state", entry_points=False)
    async with host:
        await host.call(ROOMY, "remember", key="big", value=big)
        await host.call(SMALL, "remember", key="colour", value="teal")
        with pytest.raises(StorageFull) as refused:
            await host.call(SMALL, "remember", key="big", value=big)
        assert "storage is full: setting 'big' does not fit" in refused.value.message
        assert refused.value.plugin == SMALL
        assert await host.call(SMALL, "recall", key="colour") == "teal"
        assert await host.call(SMALL, "recall", key="big") is None
        assert await host.call(ROOMY, "recall", key="big") == big
