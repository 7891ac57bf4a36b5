"""``storage.keys(prefix)`` and ``storage.blobs(prefix)``: every name starting with the
prefix, and only those, whatever characters follow it (U+10FFFF, the last one, too),
in an inline plugin's store and a sandboxed worker's."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbay.api import Storage
from tests.conftest import PluginFactory
from tests.test_storage import keeper, make_host

LAST = "\U0010ffff"
KEYS = [
    "a", "a/", "a/1", f"a/{LAST}", f"a/{LAST}x", f"a/{LAST}{LAST}", f"a{LAST}", f"a{LAST}/z",
    "a0", "b", f"{LAST}", f"{LAST}a", f"{LAST}{LAST}", "\ud7ff", "\ud7ffz", "\ue000", "é", "é/x",
]  # fmt: skip
PREFIXES = ["a", "a/", f"a/{LAST}", f"a{LAST}", LAST, f"{LAST}{LAST}", "\ud7ff", "é", "z", ""]


def wanted(prefix: str) -> list[str]:
    return sorted((k for k in KEYS if k.startswith(prefix)), key=lambda k: k.encode())


def test_every_key_after_the_prefix_is_listed_whatever_follows_it(tmp_path: Path) -> None:
    """prefix + U+10FFFF was the upper bound: 'a/' missed 'a/\\U0010ffffx' and 'a' missed
    'a\\U0010ffff/z', and a prefix ending in U+10FFFF found none of its keys."""
    store = Storage(tmp_path)
    for key in KEYS:
        store.set(key, key)
        store.put_blob(key, key.encode())
    try:
        for prefix in PREFIXES:
            assert store.keys(prefix) == wanted(prefix), prefix
            assert store.blobs(prefix) == wanted(prefix), prefix
    finally:
        store.close()


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_a_plugin_lists_its_keys_after_the_last_character(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    keeper(plugins, isolation)
    async with make_host(plugins, tmp_path, isolation) as host:
        for key in KEYS:
            await host.call("acme.keeper", "put", key=key, text=key, stars=1)
        for prefix in PREFIXES:
            listed = await host.call("acme.keeper", "keys", prefix=prefix)
            assert listed == wanted(prefix), prefix
