"""Parsed manifests kept between starts, keyed by what ``stat`` says of each file.

Discovery reads and parses every ``plugin.toml`` at every start. With a cache, a file
whose ``stat`` is unchanged since the last start is not read again: its parsed TOML
document comes from the cache, and is validated as if just read (the same checks,
the same ``PluginManifest``), so the cache saves the reading and the TOML parsing,
never a check.

A change to a manifest is always seen. An entry is used only when the file's device,
inode, size, modification time *and* change time (``st_ctime_ns``, which no program
can set back) are all as they were. A file changed within :data:`RACY_NS` of being
cached is not cached at all: a second change in the same clock tick could leave
every one of those the same (git's "racily clean" files).

The cache file (``<state>/manifests.cache``) is the host's own and is trusted no
further than that: it is used only when it is a regular file owned by this user and
writable by no one else, it is decoded against a strict schema, and any entry that
does not validate falls back to the file itself. A cache that is corrupt, foreign or
from another format is ignored whole and rewritten; it never stops discovery.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path
from typing import Any, Final

import msgspec

from plugbay.model._manifest_read import read_text
from plugbay.model.manifest import (
    PluginManifest,
    load_manifest_file,
    manifest_from_document,
    parse_toml,
)

__all__ = ["CACHE_FILE", "RACY_NS", "ManifestCache"]

#: the cache's name in a host's state directory
CACHE_FILE: Final = "manifests.cache"

#: a file changed this recently (before the cache is written) is not cached
RACY_NS: Final = 2_000_000_000
_FORMAT: Final = 1
_MAX_CACHE_BYTES: Final = 256 << 20


class _Entry(msgspec.Struct, array_like=True):
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    document: dict[str, Any]


class _File(msgspec.Struct):
    format: int
    entries: dict[str, _Entry]


_decoder: Final = msgspec.msgpack.Decoder(_File)
_encoder: Final = msgspec.msgpack.Encoder()


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ManifestCache:
    """``load(path)`` in place of ``load_manifest_file(path)``; ``save()`` once done."""

    def __init__(self, file: Path) -> None:
        self.file = Path(file)
        self._entries = self._read()
        self._seen: dict[str, _Entry] = {}
        self._changed = False
        #: how the last discovery went: files served from the cache, and files read
        self.hits = 0
        self.misses = 0

    def _read(self) -> dict[str, _Entry]:
        """The entries of a cache file we can trust the shape of; else none."""
        try:
            fd = os.open(self.file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != os.geteuid()
                or st.st_mode & 0o022
                or st.st_size > _MAX_CACHE_BYTES
            ):
                return {}
            with open(fd, "rb", closefd=False) as f:
                data = f.read(_MAX_CACHE_BYTES + 1)
            cached = _decoder.decode(data)
        except (OSError, msgspec.DecodeError, ValueError, RecursionError):
            return {}
        finally:
            os.close(fd)
        return cached.entries if cached.format == _FORMAT else {}

    def load(self, path: str, st: os.stat_result | None = None) -> PluginManifest:
        """The manifest at ``path`` (a file discovery found, ``st`` its ``stat`` if it
        took one), from the cache when that is unchanged; every problem is a
        :class:`ManifestError`, as uncached."""
        if st is None:
            try:
                st = os.stat(path)
            except OSError:
                return load_manifest_file(path)  # it says what is wrong with the file
        entry = self._entries.get(path)
        if entry is not None and _key(st) == (
            entry.dev,
            entry.ino,
            entry.size,
            entry.mtime_ns,
            entry.ctime_ns,
        ):
            try:
                manifest = self._from_document(path, entry.document, None)
            except Exception:
                pass  # an entry that no longer validates: the file decides, as uncached
            else:
                self._seen[path] = entry
                self.hits += 1
                return manifest
        self.misses += 1
        return self._read_file(path, st)

    def _read_file(self, path: str, st: os.stat_result) -> PluginManifest:
        try:
            text = read_text(path)
        except (OSError, UnicodeDecodeError):
            return load_manifest_file(path)  # the same error, worded as uncached
        document = parse_toml(text, path, what="the manifest")
        manifest = self._from_document(path, document, text)
        after = os.stat(path)
        # cached only if the file held still while it was read, and not too recently
        if _key(after) == _key(st) and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > (
            RACY_NS
        ):
            self._seen[path] = _Entry(*_key(st), document)
            self._changed = True
        return manifest

    @staticmethod
    def _from_document(path: str, document: Any, text: str | None) -> PluginManifest:
        file = Path(path)
        table = ("tool", "plugbay") if os.path.basename(path) == "pyproject.toml" else ()
        return manifest_from_document(
            document, text, path=file, table=table, origin="directory", root=file.parent
        )

    def save(self) -> None:
        """Write what this discovery saw (entries of files no longer found are dropped).
        Written beside and renamed over, so a reader never sees half a cache; a cache
        that cannot be written is only a slower next start."""
        if not self._changed and len(self._seen) == len(self._entries):
            return
        body = _encoder.encode(_File(_FORMAT, self._seen))
        temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}")
        with contextlib.suppress(OSError):
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            with open(fd, "wb") as f:
                f.write(body)
            os.replace(temporary, self.file)
            self._entries = dict(self._seen)
            self._changed = False
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
