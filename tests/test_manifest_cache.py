"""The manifest cache: discovery's parsed manifests kept between starts, keyed by ``stat``.

What a user relies on: the same manifests as without it, every change to a manifest
seen (even one made in the same clock tick as the cache was written), and a cache that
is corrupt, foreign or forged never changing what is discovered.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import msgspec
import pytest

from plugbay.model import manifest_cache
from plugbay.model.discover import discover_directory
from plugbay.model.manifest_cache import ManifestCache
from plugbay.runtime.host import Host


def _write(root: Path, pid: str, version: str = "1.0.0", extra: str = "") -> Path:
    directory = root / pid
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "plugin.toml"
    path.write_text(
        f'id = "{pid}"\nversion = "{version}"\ntype = "utility"\nentry = "m:P"\n'
        'host = ">=0.1.0"\n' + extra
    )
    return path


def _versions(root: Path, cache: ManifestCache | None) -> dict[str, str]:
    found = discover_directory(root, cache=cache)
    assert not found.problems, found.problems
    return {m.id: str(m.version) for m in found.manifests}


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (the real window is two seconds, see RACY_NS)."""
    monkeypatch.setattr(manifest_cache, "RACY_NS", -(10**18))


def _populate(root: Path, file: Path) -> ManifestCache:
    cache = ManifestCache(file)
    _versions(root, cache)
    cache.save()
    return ManifestCache(file)


def test_a_warm_discovery_gives_the_same_manifests_without_reading_them(
    tmp_path: Path, settled: None
) -> None:
    plugins = tmp_path / "plugins"
    for i in range(5):
        _write(
            plugins,
            f"acme.p{i}",
            extra=textwrap.dedent("""
                [dependencies]
                "acme.p0" = "^1.0"
                [permissions]
                network = ["127.0.0.1:80"]
            """)
            if i
            else "",
        )
    cold = {m.id: m.to_dict() for m in discover_directory(plugins).manifests}
    cache = _populate(plugins, tmp_path / "state" / "manifests.cache")
    warm = discover_directory(plugins, cache=cache)
    assert {m.id: m.to_dict() for m in warm.manifests} == cold
    assert (cache.hits, cache.misses) == (5, 0)


def test_an_edit_is_seen_whether_or_not_its_size_changed(tmp_path: Path, settled: None) -> None:
    plugins, file = tmp_path / "plugins", tmp_path / "manifests.cache"
    a = _write(plugins, "acme.a", "1.0.0")
    b = _write(plugins, "acme.b", "1.0.0")
    _populate(plugins, file)
    # acme.a: a longer file; acme.b: the same size, its mtime set as an editor's later save
    _write(plugins, "acme.a", "1.10.0")
    before = b.stat()
    _write(plugins, "acme.b", "2.0.0")
    assert b.stat().st_size == before.st_size
    os.utime(b, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    cache = ManifestCache(file)
    assert _versions(plugins, cache) == {"acme.a": "1.10.0", "acme.b": "2.0.0"}
    assert cache.misses == 2
    assert a.exists()


def test_a_file_written_in_the_same_moment_is_never_cached(tmp_path: Path) -> None:
    """Within RACY_NS of a change nothing is cached: a second same-size write in the same
    clock tick (same mtime, ctime and size) would otherwise go unseen."""
    plugins, file = tmp_path / "plugins", tmp_path / "manifests.cache"
    _write(plugins, "acme.a", "1.0.0")
    _populate(plugins, file)
    _write(plugins, "acme.a", "2.0.0")  # same size, very likely the same tick
    cache = ManifestCache(file)
    assert _versions(plugins, cache) == {"acme.a": "2.0.0"}
    assert cache.hits == 0


def test_a_removed_plugin_is_gone_and_its_entry_dropped(tmp_path: Path, settled: None) -> None:
    plugins, file = tmp_path / "plugins", tmp_path / "manifests.cache"
    _write(plugins, "acme.a")
    gone = _write(plugins, "acme.b")
    cache = _populate(plugins, file)
    gone.unlink()
    assert _versions(plugins, cache) == {"acme.a": "1.0.0"}
    cache.save()
    assert list(ManifestCache(file)._entries) == [str(plugins / "acme.a" / "plugin.toml")]


def _forge(file: Path, path: Path, document: dict[str, object]) -> None:
    """A cache whose entry for ``path`` matches the file's stat but says ``document``."""
    st = path.stat()
    entry = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, document]
    file.write_bytes(msgspec.msgpack.encode({"format": 1, "entries": {str(path): entry}}))
    file.chmod(0o600)


@pytest.mark.parametrize(
    "damage",
    ["garbage", "wrong-format", "wrong-shape", "world-writable", "symlink", "not-a-manifest"],
)
def test_a_corrupt_or_foreign_cache_changes_nothing(
    tmp_path: Path, settled: None, damage: str
) -> None:
    plugins, file = tmp_path / "plugins", tmp_path / "manifests.cache"
    path = _write(plugins, "acme.a", "1.0.0")
    forged = {"id": "acme.a", "version": "6.6.6", "type": "utility", "entry": "evil:P"}
    if damage == "garbage":
        file.write_bytes(os.urandom(4096))
    elif damage == "wrong-format":
        _forge(file, path, forged)
        file.write_bytes(file.read_bytes().replace(b"\xa6format\x01", b"\xa6format\x02"))
    elif damage == "wrong-shape":
        file.write_bytes(msgspec.msgpack.encode({"format": 1, "entries": {str(path): "x"}}))
    elif damage == "world-writable":
        _forge(file, path, forged)
        file.chmod(0o666)
    elif damage == "symlink":
        real = tmp_path / "elsewhere.cache"
        _forge(real, path, forged)
        file.symlink_to(real)
    else:  # an entry that does not validate: the file decides
        _forge(file, path, {"id": "Not An Id!", "version": "x"})
    cache = ManifestCache(file)
    assert _versions(plugins, cache) == {"acme.a": "1.0.0"}
    cache.save()
    # rewritten from what was discovered (a symlinked cache is replaced, not followed)
    assert _versions(plugins, ManifestCache(file)) == {"acme.a": "1.0.0"}
    assert not file.is_symlink()


def test_a_forged_entry_with_a_matching_stat_is_trusted_only_from_our_own_file(
    tmp_path: Path, settled: None
) -> None:
    """The one entry a cache can change is one that matches the file's stat exactly and
    validates as a manifest: its shape is the cache's, its checks the file's. Such a
    cache must be our own (this user's, writable by no one else): the state directory's
    trust, no more."""
    plugins, file = tmp_path / "plugins", tmp_path / "manifests.cache"
    path = _write(plugins, "acme.a", "1.0.0")
    _forge(file, path, {"id": "acme.a", "version": "1.0.0", "type": "utility", "entry": "m:P"})
    assert ManifestCache(file)._entries  # our own file: read
    file.chmod(0o620)
    assert not ManifestCache(file)._entries  # group-writable: ignored whole


async def test_the_host_keeps_the_cache_in_its_state_and_sees_edits_on_restart(
    tmp_path: Path, settled: None
) -> None:
    plugins, state = tmp_path / "plugins", tmp_path / "state"
    _write(plugins, "acme.a", "1.0.0")
    (plugins / "acme.a" / "m.py").write_text(
        "from plugbay import UtilityPlugin, command\n\n"
        "class P(UtilityPlugin):\n"
        "    @command\n"
        "    def hello(self) -> str:\n"
        "        return 'hi'\n"
    )
    async with Host(plugins, state_dir=state, entry_points=False, inline=["acme.a"]) as host:
        assert host.plugin("acme.a").version == "1.0.0"
    assert (state / "manifests.cache").is_file()
    assert (state / "manifests.cache").stat().st_mode & 0o077 == 0
    _write(plugins, "acme.a", "1.1.0")
    async with Host(plugins, state_dir=state, entry_points=False, inline=["acme.a"]) as host:
        assert host.plugin("acme.a").version == "1.1.0"
        assert await host.call("acme.a", "hello") == "hi"


async def test_loading_a_new_plugin_reads_only_its_manifest(
    tmp_path: Path, settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``host.load`` of a plugin added after the start looks for it through the caches
    (the plugin directories' and the store's): the manifests already known are not read
    and parsed again (at 1,000 plugins, ~0.2 s a load)."""
    from plugbay.model import discover as discover_module

    plugins, state = tmp_path / "plugins", tmp_path / "state"
    code = (
        "from plugbay import UtilityPlugin, command\n\n"
        "class P(UtilityPlugin):\n"
        "    @command\n"
        "    def hello(self) -> str:\n"
        "        return 'hi'\n"
    )
    for pid in ("acme.a", "acme.b", "acme.c"):
        _write(plugins, pid)
        (plugins / pid / "m.py").write_text(code)
    inline = ["acme.a", "acme.b", "acme.c", "acme.new"]
    async with Host(plugins, state_dir=state, entry_points=False, inline=inline):
        pass  # the store keeps a copy of each: the next start caches those too
    async with Host(plugins, state_dir=state, entry_points=False, inline=inline) as host:
        new = _write(plugins, "acme.new")
        (plugins / "acme.new" / "m.py").write_text(code)
        read: list[str] = []
        uncached, from_file = discover_module.load_manifest_file, manifest_cache.read_text
        monkeypatch.setattr(
            discover_module, "load_manifest_file", lambda p: read.append(str(p)) or uncached(p)
        )
        monkeypatch.setattr(
            manifest_cache, "read_text", lambda p: read.append(str(p)) or from_file(p)
        )
        await host.load("acme.new")
        assert await host.call("acme.new", "hello") == "hi"
        assert read == [str(new)]
