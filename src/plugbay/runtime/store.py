"""The plugin store: versions side by side under the state directory.

Layout::

    <state>/store/<plugin-id>/<version>/        the plugin's files (manifest + code)
    <state>/store/<plugin-id>/<version>.state.json   the state that version handed over
                                                     when it was last replaced (rollback)

Two kinds of entries live here. *Installed* versions were added on purpose
(``plugbay install``); the host registers every one of them and the resolver
chooses among them. *Kept* versions are copies the host took of a directory
plugin each time a version of it became active, so that ``plugbay rollback``
can return to it after its files were edited; the host only loads one when the
operator chose it (rollback, upgrade), so an edited plugin directory still wins
at the next start. The ``installed`` table of the state database tells which is
which (``source`` starting with ``kept:``).

A store entry is immutable once written: it is copied into a temporary
directory beside its final place and renamed into it.

A kept copy is taken off the event loop (:meth:`PluginStore.keep_soon`): one
keeper thread copies in the order the versions became active, so a plugin's
copies and the ``installed`` rows they write stay in that order (a reload right
after a start is kept after the start's copy). Whatever reads what a copy writes
waits for that plugin's pending copies first (:meth:`PluginStore.settle`,
:meth:`PluginStore.settled`): a rollback, an install, an uninstall, the store's
discovery, and the host's stop before it closes the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import shutil
import tempfile
import threading
import tomllib
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any, Final

import msgspec

from plugbay.api.errors import ManifestError, PlugbayError
from plugbay.model.discover import Discovery, discover_directory
from plugbay.model.manifest import PluginManifest, load_manifest, with_requires_dist
from plugbay.model.manifest_cache import CACHE_FILE, ManifestCache
from plugbay.model.versions import Version
from plugbay.state import StateStore

__all__ = ["KEPT", "KEPT_PER_PLUGIN", "PluginStore", "wheel_to_directory"]

#: ``installed.source`` prefix of a version the host kept for rollback (not installed)
KEPT: Final = "kept:"
#: kept copies per plugin (oldest go first); a rollback reaches this far back
KEPT_PER_PLUGIN: Final = 5
_IGNORE: Final = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".venv", ".mypy_cache")
_STAMP: Final = ".plugbay-source"
_KEEPER: Final = "plugbay-keep"

log = logging.getLogger("plugbay.store")


class PluginStore:
    """``<state>/store``: every installed or kept version of every plugin."""

    def __init__(self, root: Path, state: StateStore | None = None) -> None:
        self.root = Path(root)
        self.state = state
        #: the one thread copies are kept in (made at the first), in the order asked
        self._keeper: ThreadPoolExecutor | None = None
        #: each plugin's last copy asked for and not yet kept (FIFO: the earlier are done)
        self._keeping: dict[str, Future[None]] = {}
        #: copies begun as a version started, by (id, version), until it serves
        self._snapshots: dict[tuple[str, str], Future[Path | None]] = {}
        self._keeping_lock = threading.Lock()

    # ------------------------------------------------------------------ where

    def path_for(self, plugin_id: str, version: Version | str) -> Path:
        return self.root / plugin_id / str(version)

    def state_file(self, plugin_id: str, version: Version | str) -> Path:
        return self.root / plugin_id / f"{version}.state.json"

    def has(self, plugin_id: str, version: Version | str) -> bool:
        return (self.path_for(plugin_id, version) / _STAMP).is_file()

    def manifest(self, plugin_id: str, version: Version | str) -> PluginManifest:
        self.settle(plugin_id)
        directory = self.path_for(plugin_id, version)
        if not self.has(plugin_id, version):
            kept = ", ".join(self.versions(plugin_id)) or "none"
            raise PlugbayError(
                f"version {version} is not in the plugin store (kept: {kept})",
                plugin=plugin_id,
                where=str(directory),
                hint=f"roll back to one kept ('--to VERSION'), or 'plugbay install PATH' "
                f"to add {version}; 'plugbay history {plugin_id}' shows the versions it had",
                details={"kept": self.versions(plugin_id)},
            )
        return load_manifest(directory)

    def versions(self, plugin_id: str) -> list[str]:
        """The versions of ``plugin_id`` kept whole in the store, oldest first (not a copy
        still being made or replaced: those have dot names)."""
        try:
            found = [
                p.name
                for p in (self.root / plugin_id).iterdir()
                if p.is_dir() and not p.name.startswith(".")
            ]
        except OSError:
            return []
        kept = [v for v in found if self.has(plugin_id, v)]
        return sorted(kept, key=_version_key)

    def discover(self) -> Discovery:
        """Every version in the store (static: manifests only), through a manifest
        cache of its own beside it (``store.manifests.cache``)."""
        self.settle()
        if not self.root.is_dir():
            return Discovery()
        # parsed manifests kept beside the store, as discovery keeps the plugin
        # directories' (a store entry is immutable: every start would parse each again)
        cache = ManifestCache(self.root.with_name(f"{self.root.name}.{CACHE_FILE}"))
        found = discover_directory(self.root, cache=cache)
        cache.save()
        return found

    def kept(self, plugin_id: str, version: Version | str) -> bool:
        """Whether this version is only a copy kept for rollback (not installed)."""
        if self.state is None:
            return False
        return any(
            v == str(version) and source.startswith(KEPT)
            for _, v, source in self.state.installed(plugin_id)
        )

    def as_kept_from(self, manifest: PluginManifest) -> PluginManifest:
        """For placement: a kept copy is judged where its files were kept from (a bundled
        ``core/`` plugin stays trusted after a rollback); anything else as it is."""
        root = manifest.root
        if root is None or not root.is_relative_to(self.root):
            return manifest
        if not self.kept(manifest.id, manifest.version):
            return manifest
        try:
            origin = Path(json.loads((root / _STAMP).read_text())["source"])
        except (OSError, ValueError, KeyError, TypeError):
            return manifest
        name = manifest.path.name if manifest.path is not None else "plugin.toml"
        return dataclasses.replace(manifest, root=origin, path=origin / name)

    # ------------------------------------------------------------------ adding

    def install(
        self,
        source: Path,
        *,
        host_version: Version | None = None,
        prepare: Callable[[PluginManifest], object] | None = None,
        origin: str | None = None,
    ) -> PluginManifest:
        """Add a plugin directory (or a wheel) to the store; returns the stored manifest.

        Refuses a version already installed, and one whose ``host`` range excludes
        this host. ``prepare`` runs once the manifest passed those checks and before
        anything is written (it builds the plugin's Python environment: when it fails,
        nothing is installed). Nothing of the plugin runs. ``origin`` is recorded as
        where it came from (an index URL) instead of ``source``.
        """
        source = Path(source)
        if source.is_file() and source.suffix == ".whl":
            with tempfile.TemporaryDirectory(prefix="plugbay-wheel-") as tmp:
                return self.install(
                    wheel_to_directory(source, Path(tmp)),
                    host_version=host_version,
                    prepare=prepare,
                    origin=origin,
                )
        if not source.exists():
            raise ManifestError(
                "there is nothing to install here",
                where=str(source),
                hint="give a plugin directory (with plugin.toml) or a wheel (.whl)",
            )
        if not source.is_dir():
            raise ManifestError(
                "not a plugin directory or a wheel",
                where=str(source),
                hint="give a plugin directory (with plugin.toml) or a wheel (.whl)",
            )
        manifest = load_manifest(source)
        self.settle(manifest.id)
        if host_version is not None and not manifest.host.contains(
            host_version, include_prerelease=True
        ):
            raise PlugbayError(
                f"{manifest.id} {manifest.version} needs host {manifest.host}, "
                f"and this host is {host_version}",
                plugin=manifest.id,
                where=manifest.location,
                hint="install a version made for this host, or upgrade plugbay",
            )
        if self.has(manifest.id, manifest.version) and not self.kept(manifest.id, manifest.version):
            raise PlugbayError(
                f"{manifest.id} {manifest.version} is already installed",
                plugin=manifest.id,
                where=str(self.path_for(manifest.id, manifest.version)),
                hint="raise the version to install changed code; versions in the store "
                "never change",
            )
        if prepare is not None:
            prepare(manifest)
        target = self._copy(source, manifest)
        if self.state is not None:
            came_from = origin or str(source.resolve())
            self.state.record_installed(manifest.id, str(manifest.version), came_from)
            self.state.add_event(
                manifest.id,
                "install",
                version=str(manifest.version),
                details={"source": came_from, "path": str(target)},
            )
        return load_manifest(target)

    # ------------------------------------------------------------------ kept copies, off the loop

    def snapshot_soon(self, manifest: PluginManifest) -> None:
        """Begin a copy of a directory plugin's files aside, in the keeper thread, as it
        starts (beside its launch, which reads the same files): :meth:`taken` awaits it,
        :meth:`keep_soon` makes it the kept copy once the version serves."""
        if not self._keepable(manifest):
            return
        key = (manifest.id, str(manifest.version))
        future = self._submit(self._snapshot, manifest)
        with self._keeping_lock:
            stale, self._snapshots[key] = self._snapshots.get(key), future
        if stale is not None:  # a start that never served: its copy goes
            self._submit(_discard, stale)

    def drop_snapshot(self, manifest: PluginManifest) -> None:
        """A start of ``manifest`` failed: the copy :meth:`snapshot_soon` began for it goes
        now (in the keeper thread), not at the host's stop."""
        with self._keeping_lock:
            aside = self._snapshots.pop((manifest.id, str(manifest.version)), None)
        if aside is not None:  # in order: what reads the store settles first
            self._keep_in_order(manifest.id, _discard, aside)

    async def taken(self, manifest: PluginManifest) -> None:
        """Wait for the copy :meth:`snapshot_soon` began (an edit after this cannot reach
        the copy of the version that served)."""
        with self._keeping_lock:
            future = self._snapshots.get((manifest.id, str(manifest.version)))
        if future is not None:
            with contextlib.suppress(Exception):  # reported when it is kept
                await asyncio.wrap_future(future)

    def keep_soon(self, manifest: PluginManifest) -> bool:
        """:meth:`keep` in the keeper thread, after the copies asked for before it, from
        the copy :meth:`snapshot_soon` took if it did; ``False`` when there is nothing to
        keep. A copy that fails is logged: a plugin serves without it."""
        if not self._keepable(manifest):
            return False
        with self._keeping_lock:
            aside = self._snapshots.pop((manifest.id, str(manifest.version)), None)
        self._keep_in_order(manifest.id, self._keep_logged, manifest, aside)
        return True

    def _keepable(self, manifest: PluginManifest) -> bool:
        root = manifest.root
        return (
            manifest.origin == "directory"
            and root is not None
            and not root.is_relative_to(self.root)
        )

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._keeping_lock:
            if self._keeper is None:
                self._keeper = ThreadPoolExecutor(1, thread_name_prefix=_KEEPER)
            return self._keeper.submit(fn, *args)

    def _keep_in_order(self, plugin_id: str, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` in the keeper thread, as the plugin's last write asked for: what reads
        the plugin's kept copies and states waits for it (:meth:`settle`, :meth:`settled`)."""
        future = self._submit(fn, *args)
        with self._keeping_lock:
            self._keeping[plugin_id] = future
        future.add_done_callback(functools.partial(self._kept, plugin_id))

    def _keep_logged(self, manifest: PluginManifest, aside: Future[Path | None] | None) -> None:
        try:
            if aside is None:
                self.keep(manifest)
            else:  # done: the keeper runs in order, and took it before this
                self._place_kept(manifest, aside.result())
        except PlugbayError as exc:  # losing a copy must not take a plugin down
            log.error("could not keep %s %s: %s", manifest.id, manifest.version, exc)
        except Exception:  # a bug here must not pass silently, nor stop the keeper
            log.exception("could not keep %s %s", manifest.id, manifest.version)

    def _kept(self, plugin_id: str, future: Future[None]) -> None:
        with self._keeping_lock:
            if self._keeping.get(plugin_id) is future:
                del self._keeping[plugin_id]

    def _pending(self, plugin_id: str | None) -> list[Future[None]]:
        if threading.current_thread().name.startswith(_KEEPER):
            return []  # the keeper itself reading the store: it is in order already
        with self._keeping_lock:
            if plugin_id is None:
                return list(self._keeping.values())
            future = self._keeping.get(plugin_id)
            return [] if future is None else [future]

    def settle(self, plugin_id: str | None = None) -> None:
        """Wait until the copies asked for (of ``plugin_id``, or of every plugin) are kept."""
        for future in self._pending(plugin_id):
            future.result()

    async def settled(self, plugin_id: str | None = None) -> None:
        """:meth:`settle` without blocking the event loop."""
        pending = self._pending(plugin_id)
        if pending:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in pending))

    def close(self) -> None:
        """Keep what was asked for, drop the copies of starts that never served, and end
        the keeper thread (made again if asked)."""
        with self._keeping_lock:
            unclaimed = list(self._snapshots.values())
            self._snapshots.clear()
        for future in unclaimed:
            self._submit(_discard, future)
        with self._keeping_lock:
            keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.shutdown(wait=True)

    def keep(self, manifest: PluginManifest) -> Path | None:
        """Keep a copy of a directory plugin's files as they are now (for rollback).

        An installed version is never overwritten; a kept copy is refreshed when
        the files changed since it was taken. Returns the copy, or ``None`` when
        there is nothing to keep (not a directory plugin, or already in the store).
        """
        if not self._keepable(manifest):
            return None
        return self._place_kept(manifest, self._snapshot(manifest))

    def _snapshot(self, manifest: PluginManifest) -> Path | None:
        """The plugin's files copied beside their place in the store, or ``None`` when the
        store holds them already (installed, or kept with the same fingerprint)."""
        root = manifest.root
        assert root is not None
        if self.has(manifest.id, manifest.version):
            if not self.kept(manifest.id, manifest.version):
                return None
            stamp = self.path_for(manifest.id, manifest.version) / _STAMP
            with contextlib.suppress(OSError, ValueError):
                if json.loads(stamp.read_text()).get("fingerprint") == self._fingerprint(root):
                    return None
        return self._copy_aside(root, manifest)

    def _place_kept(self, manifest: PluginManifest, aside: Path | None) -> Path | None:
        if aside is None:
            return None
        target = self._place(aside, manifest)
        if self.state is not None:
            self.state.record_installed(
                manifest.id, str(manifest.version), f"{KEPT}{manifest.root}"
            )
            self._prune(manifest.id, keep=str(manifest.version))
        return target

    def _prune(self, plugin_id: str, *, keep: str) -> None:
        """Only the newest :data:`KEPT_PER_PLUGIN` kept copies of a plugin stay (never the
        one serving); installed versions stay until removed on purpose."""
        assert self.state is not None
        kept = [v for _, v, source in self.state.installed(plugin_id) if source.startswith(KEPT)]
        for version in kept[: max(0, len(kept) - KEPT_PER_PLUGIN)]:
            if version == keep:
                continue
            shutil.rmtree(self.path_for(plugin_id, version), ignore_errors=True)
            self.state_file(plugin_id, version).unlink(missing_ok=True)
            self.state.remove_installed(plugin_id, version)

    def _copy(self, source: Path, manifest: PluginManifest) -> Path:
        return self._place(self._copy_aside(source, manifest), manifest)

    def _copy_aside(self, source: Path, manifest: PluginManifest) -> Path:
        """The files in a temporary directory beside their place (a dot name: no plugin)."""
        target = self.path_for(manifest.id, manifest.version)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{manifest.version}-", dir=target.parent))
        except OSError as exc:
            raise self._unwritable(exc, manifest, target) from None
        try:
            shutil.copytree(source, tmp, ignore=self._ignored, dirs_exist_ok=True, symlinks=False)
            (tmp / _STAMP).write_text(
                json.dumps(
                    {"source": str(source.resolve()), "fingerprint": self._fingerprint(source)}
                )
            )
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self._unwritable(exc, manifest, target) from None
        return tmp

    def _ignored(self, directory: str, names: list[str]) -> set[str]:
        """What a copy of a plugin's directory leaves out: caches, and a host's state
        directory inside it (``.plugbay``, or this store's own by any name). Never plugin
        code: ``plugbay call`` run in the plugin's directory keeps its state (its store,
        its Python environments) there, and a copy of it into its own store would copy
        itself over and over, for minutes at each start."""
        state = os.path.realpath(self.root.parent)
        skipped = set(_IGNORE(directory, names))
        for name in names:
            if name == ".plugbay" or (  # a path is resolved only when its name could be it
                name == os.path.basename(state)
                and os.path.realpath(os.path.join(directory, name)) == state
            ):
                skipped.add(name)
        return skipped

    def _fingerprint(self, root: Path) -> list[Any]:
        """Names, sizes and modification times of a plugin's files, as a copy takes them
        (cheap change detection)."""
        out: list[Any] = []
        for dirpath, dirnames, filenames in os.walk(root):
            skipped = self._ignored(dirpath, [*dirnames, *filenames])
            dirnames[:] = sorted(d for d in dirnames if d not in skipped)
            for name in sorted(n for n in filenames if n not in skipped):
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    out.append([os.path.relpath(path, root), st.st_size, st.st_mtime_ns])
        return out

    def _place(self, tmp: Path, manifest: PluginManifest) -> Path:
        """Rename a copy made aside into its place, over an earlier copy of the version."""
        target = self.path_for(manifest.id, manifest.version)
        try:
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}-old-{os.getpid()}")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
            tmp.rename(target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self._unwritable(exc, manifest, target) from None
        return target

    @staticmethod
    def _unwritable(exc: OSError, manifest: PluginManifest, target: Path) -> PlugbayError:
        return PlugbayError(
            f"cannot write the plugin store: {exc.strerror or exc}",
            plugin=manifest.id,
            where=str(target),
            hint="check free disk space and the permissions of the state directory",
        )

    # ------------------------------------------------------------------ state kept for rollback

    def save_state_soon(self, plugin_id: str, version: Version | str, state: Any) -> None:
        """Keep what ``version`` exported as it was replaced, for a rollback to it: encoded
        now, on the caller's thread (the snapshot: the new version may go on changing the
        objects it was handed), and written by the keeper thread, off the event loop, in
        order with the plugin's copies (a rollback waits for both: :meth:`settled`). A
        state JSON cannot hold raises here (TypeError; RecursionError for a cycle); a
        failed write is logged."""
        data = _encode_state({"state": state})
        self._keep_in_order(plugin_id, _write_state, self.state_file(plugin_id, version), data)

    def handover_file(self, plugin_id: str) -> Path:
        return self.root / plugin_id / "handover.json"

    def save_handover(self, plugin_id: str, version: Version | str, state: Any) -> None:
        """What a plugin held when the host stopped it (export_state), for its next start;
        written durably (fsync) before the plugin is cleaned up."""
        path = self.handover_file(plugin_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump({"version": str(version), "state": state}, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    def load_handover(self, plugin_id: str) -> tuple[bool, Any, str | None]:
        """``(True, state, version)`` if a stop left a state for this plugin's next start."""
        try:
            data = json.loads(self.handover_file(plugin_id).read_text())
            return True, data["state"], str(data.get("version"))
        except FileNotFoundError:
            return False, None, None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PlugbayError(
                f"the state kept for it at its last stop cannot be read: {exc}",
                plugin=plugin_id,
                where=str(self.handover_file(plugin_id)),
                hint="restore the file from a backup, or delete it to start without that state",
            ) from None

    def drop_handover(self, plugin_id: str) -> None:
        self.handover_file(plugin_id).unlink(missing_ok=True)

    def load_state(self, plugin_id: str, version: Version | str) -> tuple[bool, Any]:
        """``(True, state)`` if a state was kept for this version, else ``(False, None)``."""
        try:
            return True, json.loads(self.state_file(plugin_id, version).read_bytes())["state"]
        except (OSError, ValueError, KeyError):
            return False, None


#: a state kept for rollback: msgspec's JSON (ten times json.dumps on a large state), its
#: keys as strings (as ``handover.plain_state`` makes them)
_encode_state: Final = msgspec.json.Encoder().encode


def _write_state(path: Path, data: bytes) -> None:
    """Write a kept state atomically (in the keeper thread); a failure is logged, and a
    rollback to that version then starts without the state."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        log.warning("the state kept for a rollback cannot be written to %s: %s", path, exc)


def _discard(aside: Future[Path | None]) -> None:
    """A copy taken for a start that never served (run in the keeper, so it is done)."""
    with contextlib.suppress(Exception):
        path = aside.result()
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):  # the plugin's own directory, when it held only that
                path.parent.rmdir()


def _requires_dist(archive: zipfile.ZipFile) -> list[str]:
    for name in archive.namelist():
        if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
            text = archive.read(name).decode("utf-8", errors="replace")
            return [
                line.split(":", 1)[1].strip()
                for line in text.splitlines()
                if line.startswith("Requires-Dist:")
            ]
    return []


def wheel_to_directory(wheel: Path, dest: Path) -> Path:
    """Unpack a plugin wheel into ``dest`` and return the plugin directory inside it.

    This is the seam for ``plugbay.pdk``'s verified unpacking (signatures, RECORD
    hashes): a wheel is a zip whose top-level package holds the ``plugin.toml``.
    Here the standard library unpacks it, refusing members that would land outside
    ``dest``.
    """
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ManifestError(
            f"not a readable wheel: {exc}",
            where=str(wheel),
            hint="build the plugin with 'plugbay build', or install its directory",
        ) from None
    with archive:
        manifests = [
            n for n in archive.namelist() if PurePosixPath(n).name == "plugin.toml" and "/" in n
        ]
        if len(manifests) != 1:
            raise ManifestError(
                "the wheel holds "
                + ("no plugin.toml" if not manifests else f"{len(manifests)} plugin.toml files")
                + " inside a package",
                where=str(wheel),
                hint="a plugin wheel has exactly one package with a plugin.toml beside its code",
            )
        for name in archive.namelist():
            target = (dest / name).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise ManifestError(
                    f"the wheel member '{name}' would be written outside the unpack directory",
                    where=str(wheel),
                    hint="this wheel is malformed or hostile; do not install it",
                )
        archive.extractall(dest)
        requires = _requires_dist(archive)
    package = dest / PurePosixPath(manifests[0]).parent
    if requires:  # a plugin built from pyproject.toml: [project] dependencies live here
        with contextlib.suppress(OSError, UnicodeDecodeError):
            manifest_file = package / "plugin.toml"
            text = manifest_file.read_text("utf-8")
            manifest_file.write_text(with_requires_dist(text, requires), "utf-8")
    # An entry named as installed ("acme_greeter.greeter:Greeter") is imported from the
    # wheel's root, where the package sits; one named inside it ("greeter:Greeter"),
    # from the package directory.
    try:
        entry = str(tomllib.loads((package / "plugin.toml").read_text("utf-8")).get("entry", ""))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return package  # the manifest's own checks say what is wrong with it
    if entry.split(":", 1)[0].split(".", 1)[0] == package.name and package.parent == dest:
        shutil.copy2(package / "plugin.toml", dest / "plugin.toml")
        return dest
    return package


def _version_key(text: str) -> tuple[int, Any]:
    """Versions in SemVer order; a name that is none sorts first, by its text."""
    try:
        return 1, Version.parse(text)
    except PlugbayError:  # VersionError
        return 0, text
