"""Plugin wheels: reading one, checking one, unpacking one (building one:
``plugbay.pdk.build``).

The manifest is in the wheel as ``<package>/plugin.toml`` (with its ``RECORD``
entry), which is where the host looks for the manifest of an installed
distribution. ``inspect_wheel`` refuses anything that is not a plugin wheel, and a
wheel whose files do not match its own ``RECORD``; ``wheel_to_directory`` turns a
plugin wheel into a plugin directory a host discovers.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import os
import shutil
import tomllib
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import (
    MAX_MANIFEST_BYTES,
    PluginManifest,
    parse_manifest,
    with_requires_dist,
)
from plugbay.pdk._scratch import scratch_beside
from plugbay.pdk.errors import WheelError

__all__ = [
    "WheelInfo",
    "file_sha256",
    "inspect_wheel",
    "wheel_to_directory",
]

ENTRY_POINT_GROUP: Final = "plugbay.plugins"
PROVENANCE: Final = ".plugbay-wheel.json"
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class WheelInfo:
    """A plugin wheel, read and checked: its manifest, package and entry point."""

    path: Path
    distribution: str
    version: str
    manifest: PluginManifest
    manifest_text: str
    packages: tuple[str, ...]
    requires: tuple[str, ...] = field(default=())


#: a plugin wheel larger than this once unpacked is refused before anything is read
MAX_UNPACKED: Final = 256 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


# --------------------------------------------------------------------------- reading a wheel


def unpack_plugin_wheel(wheel: Path, dest: Path) -> Path:
    """Unpack a checked plugin wheel (:func:`inspect_wheel`) into ``dest`` as a host's store
    does, and return the plugin directory to validate: the wheel's root when the entry names
    the package (``acme_greeter.plugin:Greeter``, imported from beside it), else the package."""
    with zipfile.ZipFile(wheel) as archive:
        manifests = [
            n for n in archive.namelist() if PurePosixPath(n).name == "plugin.toml" and "/" in n
        ]
        for name in archive.namelist():
            if not (dest / name).resolve().is_relative_to(dest.resolve()):
                raise WheelError(
                    f"the wheel member '{name}' would be written outside the unpack directory",
                    where=str(wheel),
                    hint="this wheel is malformed or hostile; do not install it",
                )
        archive.extractall(dest)
        requires = _requires_dist(archive)
    if len(manifests) != 1:
        raise WheelError(
            f"the wheel holds {len(manifests)} plugin.toml files inside a package",
            where=str(wheel),
            hint="a plugin wheel has exactly one package with a plugin.toml beside its code",
        )
    package = dest / PurePosixPath(manifests[0]).parent
    try:
        if requires:  # built from pyproject.toml: [project] dependencies, as the store reads them
            text = (package / "plugin.toml").read_text("utf-8")
            (package / "plugin.toml").write_text(with_requires_dist(text, requires), "utf-8")
        entry = str(tomllib.loads((package / "plugin.toml").read_text("utf-8")).get("entry", ""))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return package  # the manifest's own checks say what is wrong with it
    if entry.split(":", 1)[0].split(".", 1)[0] == package.name and package.parent == dest:
        shutil.copy2(package / "plugin.toml", dest / "plugin.toml")
        return dest
    return package


def _requires_dist(archive: zipfile.ZipFile, info_dir: str | None = None) -> tuple[str, ...]:
    """The wheel's ``Requires-Dist`` (without extras' requirements): its Python requirements."""
    names = [f"{info_dir}/METADATA"] if info_dir else archive.namelist()
    for name in names:
        if name.count("/") == 1 and name.endswith(".dist-info/METADATA"):
            metadata = archive.read(name).decode("utf-8", errors="replace")
            return tuple(
                line.split(":", 1)[1].strip()
                for line in metadata.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line
            )
    return ()


def inspect_wheel(path: Path) -> WheelInfo:
    """Read and check a plugin wheel; :class:`WheelError` when it is not one."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    path = Path(path)
    hint = "build plugin wheels with 'plugbay build PLUGIN_DIR'"
    if not path.is_file():
        raise WheelError("there is no such file", where=str(path), hint="check the path")
    try:
        dist, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise WheelError(f"not a wheel: {exc}", where=str(path), hint=hint) from None
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WheelError(
            f"not a wheel: the file is not a zip archive ({exc})", where=str(path), hint=hint
        ) from None
    try:
        with archive:
            return _read_plugin_wheel(archive, path, str(dist), str(version), hint)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, UnicodeDecodeError) as exc:
        raise WheelError(
            f"the wheel is damaged: {exc}",
            where=str(path),
            hint="do not install it; get it again, or rebuild it with 'plugbay build'",
        ) from None


def _read_plugin_wheel(
    archive: zipfile.ZipFile, path: Path, dist: str, version: str, hint: str
) -> WheelInfo:
    names = archive.namelist()
    info_dir = _dist_info(archive, names, path, hint)
    _check_record(archive, info_dir, path)
    plugin_id, value = _plugin_entry_point(archive, info_dir, path)
    manifest, text = _wheel_manifest(archive, names, path, plugin_id, value, hint)
    requires = _requires_dist(archive, info_dir)
    packages = tuple(
        sorted(
            {
                n.split("/", 1)[0]
                for n in names
                if "/" in n and not n.split("/", 1)[0].endswith((".dist-info", ".data"))
            }
        )
    )
    return WheelInfo(path, dist, version, manifest, text, packages, requires)


def _dist_info(archive: zipfile.ZipFile, names: list[str], path: Path, hint: str) -> str:
    """The wheel's one .dist-info directory, once its unpacked size is known to be sane."""
    unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNPACKED:
        raise WheelError(
            f"the wheel unpacks to {unpacked:,} bytes, more than the {MAX_UNPACKED:,} allowed",
            where=str(path),
            hint="this wheel is malformed or hostile (a zip bomb); do not install it",
        )
    dist_info = sorted({n.split("/", 1)[0] for n in names if ".dist-info/" in n})
    if len(dist_info) != 1:
        raise WheelError(
            "not a wheel: it has no single .dist-info directory", where=str(path), hint=hint
        )
    return dist_info[0]


def _wheel_manifest(
    archive: zipfile.ZipFile,
    names: list[str],
    path: Path,
    plugin_id: str,
    value: str,
    hint: str,
) -> tuple[PluginManifest, str]:
    """The manifest the wheel carries beside its plugin's package (and its text), valid
    and agreeing with the entry point ``plugin_id = value``."""
    package = value.split(":", 1)[0].split(".", 1)[0]
    manifest_name = f"{package}/plugin.toml"
    if manifest_name not in names:
        raise WheelError(
            f"the wheel declares plugin '{plugin_id}' but carries no manifest ({manifest_name})",
            where=str(path),
            hint=hint + ", which adds it",
        )
    if archive.getinfo(manifest_name).file_size > MAX_MANIFEST_BYTES:
        raise WheelError(
            f"the wheel's manifest ({manifest_name}) is larger than {MAX_MANIFEST_BYTES:,} bytes",
            where=f"{path}!{manifest_name}",
            hint="this wheel is malformed or hostile; do not install it",
        )
    text = archive.read(manifest_name).decode("utf-8", errors="replace")
    try:
        manifest = parse_manifest(
            text, path=None, origin="wheel", distribution=f"{path.name}!{manifest_name}"
        )
    except PlugbayError as exc:
        raise WheelError(
            f"the wheel's manifest does not validate: {exc.message}",
            plugin=plugin_id,
            where=f"{path}!{manifest_name}",
            hint=exc.hint,
        ) from None
    if manifest.id != plugin_id or manifest.entry != value:
        raise WheelError(
            f"the entry point says '{plugin_id} = {value}' but the manifest says "
            f"'{manifest.id} = {manifest.entry}'",
            where=str(path),
            hint="rebuild it with 'plugbay build'",
        )
    return manifest, text


def _check_record(archive: zipfile.ZipFile, info_dir: str, path: Path) -> None:
    record_name = f"{info_dir}/RECORD"
    try:
        record = archive.read(record_name).decode()
    except KeyError:
        raise WheelError(
            "not a wheel: it has no RECORD", where=str(path), hint="rebuild it"
        ) from None
    listed: dict[str, str] = {}
    for row in record.splitlines():
        parts = row.rsplit(",", 2)
        if len(parts) == 3 and parts[1]:
            listed[parts[0]] = parts[1]
    for name in archive.namelist():
        if name == record_name or name.endswith("/"):
            continue
        expected = listed.get(name)
        if expected is None:
            raise WheelError(
                f"the wheel was changed after it was built: {name} is not in its RECORD",
                where=str(path),
                hint="do not install it; rebuild it from source with 'plugbay build'",
            )
        if record_hash(archive.read(name)) != expected:
            raise WheelError(
                f"the wheel was changed after it was built: {name} does not match its RECORD",
                where=str(path),
                hint="do not install it; rebuild it from source with 'plugbay build'",
            )


def _plugin_entry_point(archive: zipfile.ZipFile, info_dir: str, path: Path) -> tuple[str, str]:
    hint = (
        'a plugin wheel declares [project.entry-points."plugbay.plugins"]; build one with '
        "'plugbay build PLUGIN_DIR'"
    )
    try:
        text = archive.read(f"{info_dir}/entry_points.txt").decode()
    except KeyError:
        raise WheelError(
            "not a plugin: the wheel declares no entry points", where=str(path), hint=hint
        ) from None
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise WheelError(f"not a plugin: bad entry_points.txt ({exc})", where=str(path)) from None
    if not parser.has_section(ENTRY_POINT_GROUP) or not parser.items(ENTRY_POINT_GROUP):
        raise WheelError(
            f"not a plugin: the wheel has no '{ENTRY_POINT_GROUP}' entry point",
            where=str(path),
            hint=hint,
        )
    items = parser.items(ENTRY_POINT_GROUP)
    if len(items) > 1:
        raise WheelError(
            f"the wheel declares {len(items)} plugins; plugbay installs one plugin per wheel",
            where=str(path),
            hint="build one wheel per plugin",
        )
    name, value = items[0]
    return name.strip(), value.strip()


# --------------------------------------------------------------------------- wheel → directory


def wheel_to_directory(
    wheel: Path,
    plugins_dir: Path,
    *,
    replace: bool = False,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Unpack a plugin wheel into ``plugins_dir/<id>-<version>/`` as a plugin directory.

    The wheel's packages are copied (not its ``.dist-info``), with the manifest as
    ``plugin.toml`` at the top, so the host loads it like any directory plugin.
    Unpacking goes to a scratch directory first: a failure leaves nothing behind.
    Raises :class:`WheelError` when the wheel is not a plugin or the target exists
    (unless ``replace``).
    """
    info = inspect_wheel(wheel)
    m = info.manifest
    plugins_dir = Path(plugins_dir)
    target = plugins_dir / f"{m.id}-{m.version}"
    if target.exists() and not replace:
        raise WheelError(
            f"{m.id} {m.version} is already installed",
            plugin=m.id,
            where=str(target),
            hint="pass --force to replace it, or build a new version",
        )
    plugins_dir.mkdir(parents=True, exist_ok=True)
    scratch = scratch_beside(plugins_dir, ".plugbay-install-")
    try:
        with zipfile.ZipFile(info.path) as archive:
            for member in _members(archive, info):
                destination = scratch / member
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(archive.read(str(member)))
        (scratch / "plugin.toml").write_text(
            with_requires_dist(info.manifest_text, info.requires), encoding="utf-8"
        )
        record = {
            "wheel": info.path.name,
            "sha256": file_sha256(info.path),
            "distribution": info.distribution,
            "requires": list(info.requires),
            **(provenance or {}),
        }
        (scratch / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def _members(archive: zipfile.ZipFile, info: WheelInfo) -> Iterator[PurePosixPath]:
    manifest_name = f"{info.manifest.module.split('.', 1)[0]}/plugin.toml"
    for name in archive.namelist():
        member = PurePosixPath(name)
        if name.endswith("/") or name == manifest_name:
            continue
        if member.is_absolute() or ".." in member.parts:
            raise WheelError(
                f"the wheel holds a path outside its own tree: {name}",
                where=str(info.path),
                hint="do not install it",
            )
        if member.parts[0] in info.packages:
            yield member
