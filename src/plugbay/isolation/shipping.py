"""A plugin's code (and its Python environment) shipped to a Ray node, by digest.

A node shares no file system with the host. Before a plugin starts there, the
host packs its directory into an archive named by its content (a deterministic
tar: sorted entries, no owners, no times, regular files and directories only)
and hands it to Ray's object store; the node takes it from there only when its
cache does not hold that digest yet, checks the archive's SHA-256 against the
digest it was promised, and unpacks it into ``<node cache>/code/<digest>``
(whole or not at all: it is renamed into place). A mismatch is refused, never
unpacked: :class:`ShipmentRefused`.

The same goes for a plugin's own environment (``runtime.environments``): its
site-packages, built by the host for this Python, are shipped and unpacked into
``<node cache>/env/<digest>``, and the node links its own plugbay runtime beside
them (``node_environment``). Nothing is downloaded on the node.

Nothing here imports Ray: the host side (``Packer``) runs in the host, the node
side (``NodeCache``) in a node's agent or a bare actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from plugbay.api.errors import PluginLoadError
from plugbay.isolation.base import EnvironmentPaths

__all__ = ["NodeCache", "Packer", "Shipment", "ShipmentRefused", "node_cache_root"]

#: what is never shipped: caches and tools' state, not the plugin's code
_SKIP_DIRS: Final = frozenset({"__pycache__", ".git", ".hg", ".venv", ".mypy_cache",
                               ".pytest_cache", ".ruff_cache"})  # fmt: skip
_SKIP_SUFFIXES: Final = (".pyc", ".pyo")
_DIGEST: Final = re.compile(r"^[0-9a-f]{64}$")


class ShipmentRefused(PluginLoadError):
    """A node refused the archive of a plugin's code or environment: its content does
    not match the digest the host announced (damaged or tampered with on the way)."""

    code = "shipment_refused"


@dataclasses.dataclass(frozen=True, slots=True)
class Shipment:
    """One archive: its SHA-256 (hex), its bytes, and what it holds."""

    digest: str
    data: bytes
    #: "code" (a plugin's directory) or "env" (an environment's site-packages)
    kind: str


def pack_directory(root: Path) -> bytes:
    """``root``'s files as a deterministic tar (the same tree gives the same bytes)."""
    import tarfile  # here: the host imports this module for its errors, rarely packs

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(root):
            rel = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _walk(root: Path) -> list[Path]:
    """Regular files and directories beneath ``root``, sorted; a link is followed only
    when it stays inside ``root`` (a plugin's code never reaches out of its directory)."""
    found: list[Path] = []
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        here = Path(dirpath)
        for name in dirnames:
            found.append(here / name)
        for name in sorted(filenames):
            path = here / name
            if name.endswith(_SKIP_SUFFIXES):
                continue
            real = os.path.realpath(path)
            if os.path.commonpath([real_root, real]) != real_root:
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.stat(path).st_mode):
                    found.append(path)
    return sorted(found)


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """What tells a changed tree (names, sizes, times): a cached archive is reused until
    it changes, so a plugin's start does not pack it again."""
    out = []
    for path in _walk(root):
        with contextlib.suppress(OSError):
            st = path.stat()
            out.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(out)


class Packer:
    """The host's side: a plugin's directory or environment as a :class:`Shipment`,
    packed once per content (kept while its tree does not change)."""

    def __init__(self) -> None:
        #: root → (its signature, its shipment): what the tampering test reaches
        self.cache: dict[str, tuple[tuple[tuple[str, int, int], ...], Shipment]] = {}

    def directory(self, root: Path, kind: str = "code") -> Shipment:
        key = os.path.realpath(root)
        signature = _signature(root)
        cached = self.cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        data = pack_directory(root)
        shipment = Shipment(hashlib.sha256(data).hexdigest(), data, kind)
        self.cache[key] = (signature, shipment)
        return shipment


def node_cache_root(node: str) -> Path:
    """This node's cache (code, environments, plugins' scratch directories): local to
    the node, under Ray's temp root there (``RAY_TMPDIR``, else the temp directory),
    one per node (a test cluster's nodes share a machine). Its parent is private to this
    user (``_private_dir``): the temp root is shared, and whoever could write there
    could change the code the node's plugins import."""
    base = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())
    return _private_dir(base / f"plugbay-node-{os.getuid()}") / node[:16]


def _private_dir(path: Path) -> Path:
    """``path``, a directory of this user's that no one else may write or read (made
    so, mode 0700); refused when it is another user's, a link, or others may write it."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or mode & 0o022:
        what = "not a directory" if not stat.S_ISDIR(st.st_mode) else f"mode {mode:o}"
        raise PluginLoadError(
            f"this node's cache of plugbay code, {path}, is not private to its user "
            f"(uid {os.getuid()}): it is {what}, owned by uid {st.st_uid}; another user "
            "could change the code its plugins run, so nothing is unpacked there",
            hint=f"remove {path} on that node (plugbay makes it again, mode 0700), or give "
            "the node's Ray a temp root of its own (RAY_TMPDIR)",
        )
    if mode & 0o077:  # an earlier plugbay's (0755): what its plugins write stays theirs
        os.chmod(path, 0o700)
    return path


class NodeCache:
    """A node's side: archives unpacked by digest, each checked before it is used."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, kind: str, digest: str) -> Path:
        if kind not in ("code", "env") or not _DIGEST.match(digest):
            raise ShipmentRefused(f"not a shipment this node takes: {kind} {digest!r:.80}")
        return self.root / kind / digest

    def has(self, kind: str, digest: str) -> bool:
        return self.path(kind, digest).is_dir()

    def unpack(self, kind: str, digest: str, data: bytes, *, plugin: str = "") -> Path:
        """The archive unpacked at its digest's place, once its content matches it."""
        final = self.path(kind, digest)
        if final.is_dir():
            return final
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ShipmentRefused(
                f"the archive of its {_what(kind)} does not "
                f"match its digest (expected sha256 {digest[:16]}…, got {actual[:16]}…): "
                "it was damaged or changed on the way, and was not unpacked",
                plugin=plugin or None,
                hint="start it again (the host ships it anew); if it happens again, the "
                "path between the host and the node changes what it carries",
                details={"expected": digest, "actual": actual, "kind": kind},
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        import tarfile

        tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=final.parent))
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                tar.extractall(tmp, filter="data")  # no links out, no devices, no owners
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ShipmentRefused(
                f"the archive of its {_what(kind)} could not be unpacked: {exc}",
                plugin=plugin or None,
                hint="the host packs a plugin's directory itself; an archive that reaches "
                "out of its directory, or is not a tar, did not come from a plugbay host",
                details={"digest": digest, "kind": kind},
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            tmp.rename(final)
        except OSError:  # another worker of this node unpacked it first: the same bytes
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def scratch(self, plugin: str) -> Path:
        """The plugin's directory on this node (``context.environment.data_dir`` there):
        files it writes itself stay on the node; its store is the host's."""
        path = self.root / "data" / re.sub(r"[^\w.-]", "_", plugin)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def environment(self, site_packages: Path, runtime_packages: list[str]) -> EnvironmentPaths:
        """An environment whose site-packages were shipped here, with this node's own
        plugbay runtime linked beside it (what its zygote may import of plugbay)."""
        runtime = self._runtime(runtime_packages)
        reads = links_read_paths(runtime)
        return EnvironmentPaths(str(site_packages), str(runtime), (str(site_packages), *reads))

    def _runtime(self, names: list[str]) -> Path:
        targets = runtime_targets(names)
        key = hashlib.sha256(repr(sorted(targets.items())).encode()).hexdigest()[:12]
        return link_dir(self.root / f"runtime-{key}", targets)


def _what(kind: str) -> str:
    return "code" if kind == "code" else "environment"


def link_dir(path: Path, targets: Mapping[str, str]) -> Path:
    """``path``, a directory of links ``name -> target``, made atomically once (a second
    maker racing the first leaves the same links)."""
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".runtime-tmp-", dir=path.parent))
    for name, target in targets.items():
        os.symlink(target, tmp / name)
    try:
        tmp.rename(path)
    except OSError:  # another maker was first: the same links
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def links_read_paths(links: Path) -> list[str]:
    """What a worker needs to read of a directory of links: it and the links' targets."""
    return [str(links), *(os.path.realpath(links / name) for name in os.listdir(links))]


def runtime_targets(names: Iterable[str]) -> dict[str, str]:
    """Where this Python has each of these packages, and its metadata (plugbay reads its
    own version from it): what a plugin's environment links to run plugbay's runtime."""
    out: dict[str, str] = {}
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        if spec.submodule_search_locations:
            out[name] = os.path.realpath(next(iter(spec.submodule_search_locations)))
        else:
            out[Path(spec.origin).name] = os.path.realpath(spec.origin)
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            info: Any = getattr(importlib.metadata.distribution(name), "_path", None)
            if info is not None and Path(info).is_dir():
                out[Path(info).name] = os.path.realpath(info)
    return out
