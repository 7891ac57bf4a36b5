"""Plugin wheels: building one (the spec's ``DevTools.compiler``), reading one, unpacking one.

``build_plugin`` runs the standard ``build`` frontend (PEP 517) on the plugin's
package and adds the manifest to the wheel as ``<package>/plugin.toml`` (with
its ``RECORD`` entry), which is where the host looks for the manifest of an
installed distribution. A SHA-256 digest is written beside the wheel
(``<wheel>.sha256``, ``sha256sum`` format).

A plugin kept as a directory with a ``plugin.toml`` is built too: it is copied
into a package named after its id, with a generated ``pyproject.toml``.

``inspect_wheel`` refuses anything that is not a plugin wheel, and a wheel whose
files do not match its own ``RECORD``; ``wheel_to_directory`` turns a plugin
wheel into a plugin directory a host discovers.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import (
    MAX_MANIFEST_BYTES,
    PluginManifest,
    load_manifest,
    parse_manifest,
    parse_toml,
    with_requires_dist,
)
from plugbay.pdk.errors import BuildError, WheelError

__all__ = [
    "BuildResult",
    "WheelInfo",
    "build_plugin",
    "file_sha256",
    "inspect_wheel",
    "wheel_to_directory",
]

ENTRY_POINT_GROUP: Final = "plugbay.plugins"
PROVENANCE: Final = ".plugbay-wheel.json"
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What ``plugbay build`` made: the spec's ``BuildResult``."""

    wheel: Path
    sha256: Path
    digest: str
    manifest: PluginManifest


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


# --------------------------------------------------------------------------- build


def build_plugin(
    path: Path,
    out_dir: Path | None = None,
    *,
    known: Sequence[PluginManifest] | None = None,
) -> BuildResult:
    """Build a plugin wheel with its manifest and digest; see the module docstring.

    Build equals validate: the plugin is checked first with every check of
    ``plugbay validate`` (:func:`plugbay.pdk.validate_plugin`, with the import check;
    ``known`` for dependencies and services), and the built wheel is validated
    again as a host would install it. A plugin or a wheel that does not validate is
    refused with its findings, and nothing is written.
    """
    from plugbay.pdk.analyzer import validate_plugin

    path = Path(path)
    try:
        manifest = load_manifest(path)
    except PlugbayError as exc:
        raise BuildError(
            f"the manifest does not validate: {exc.message}",
            plugin=exc.plugin,
            where=exc.where,
            hint=(exc.hint + "; " if exc.hint else "") + "nothing was built",
        ) from None
    result = validate_plugin(path, known=known)
    if result.errors:
        first = result.errors[0]
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise BuildError(
            f"the plugin does not validate: {first.message}{more}",
            plugin=manifest.id,
            where=first.location(),
            hint=f"run 'plugbay validate {path}' for every finding; nothing was built",
        )
    assert manifest.path is not None and manifest.root is not None
    out_dir = Path(out_dir) if out_dir is not None else manifest.root / "dist"
    with tempfile.TemporaryDirectory(prefix="plugbay-build-") as scratch:
        work = Path(scratch)
        if manifest.path.name == "pyproject.toml":
            # built from a copy: setuptools leaves build/ and *.egg-info where it builds
            source = work / "src"
            shutil.copytree(manifest.root, source, ignore=_NOT_SOURCE)
            package, manifest_text = _project_package(manifest)
        else:
            source, package, manifest_text = _package_directory(manifest, work / "src")
        built = _run_frontend(source, work / "out", manifest)
        _add_manifest(built, package, manifest_text)
        checked = validate_plugin(built, known=known)
        if checked.errors:
            first = checked.errors[0]
            raise BuildError(
                f"the built wheel does not validate: {first.message}",
                plugin=manifest.id,
                where=first.location(),
                hint="this is a bug in how the wheel was built (please report it); "
                "nothing was written",
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        wheel = out_dir / built.name
        shutil.move(str(built), wheel)
    digest = file_sha256(wheel)
    sha_file = wheel.with_name(wheel.name + ".sha256")
    sha_file.write_text(f"{digest}  {wheel.name}\n")
    with contextlib.suppress(FileNotFoundError):  # a signature of an older build is void
        wheel.with_name(wheel.name + ".sig").unlink()
    return BuildResult(wheel, sha_file, digest, manifest)


_NOT_SOURCE: Final = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".git", ".venv", "venv", ".plugbay", "dist", "build", "*.egg-info"
)


def _capturing_runner(
    cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
) -> None:
    """Run a backend hook with its output kept for the error message, never printed."""
    env = {**os.environ, **(extra_environ or {}), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, check=False)
    if proc.returncode:
        raise subprocess.CalledProcessError(
            proc.returncode, list(cmd), output=proc.stdout + proc.stderr
        )


def _project_package(manifest: PluginManifest) -> tuple[str, str]:
    """For a pyproject-based plugin: check [project] agrees with the manifest; the
    package that receives plugin.toml, and the manifest as a plugin.toml."""
    assert manifest.path is not None
    data = parse_toml(manifest.path.read_text(encoding="utf-8"), str(manifest.path))
    project = data.get("project", {})
    where = str(manifest.path)
    if project.get("version") != str(manifest.version):
        raise BuildError(
            f"[project] version is {project.get('version')!r} but the manifest says "
            f"'{manifest.version}'",
            plugin=manifest.id,
            where=where,
            hint="make [project] version and [tool.plugbay] version the same; nothing was built",
        )
    entry_points = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    if entry_points.get(manifest.id) != manifest.entry:
        raise BuildError(
            f"the entry point for '{manifest.id}' is {entry_points.get(manifest.id)!r} but the "
            f"manifest's entry is '{manifest.entry}'",
            plugin=manifest.id,
            where=where,
            hint=f'add [project.entry-points."{ENTRY_POINT_GROUP}"] "{manifest.id}" = '
            f'"{manifest.entry}"; nothing was built',
        )
    package = manifest.module.split(".")[0]
    if manifest.root is None or not (manifest.root / package).is_dir():
        raise BuildError(
            f"the entry module's package '{package}' is not a directory beside pyproject.toml",
            plugin=manifest.id,
            where=where,
            hint="keep the plugin's package next to pyproject.toml (flat layout), as "
            "'plugbay new' does; nothing was built",
        )
    return package, _toml(data["tool"]["plugbay"])


def _package_directory(manifest: PluginManifest, work: Path) -> tuple[Path, str, str]:
    """For a plugin.toml directory: a project with the directory as package ``plugbay_<id>``."""
    assert manifest.root is not None and manifest.path is not None
    package = "plugbay_" + re.sub(r"\W", "_", manifest.id)
    shutil.copytree(
        manifest.root,
        work / package,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "dist", "build", "plugin.toml"),
    )
    (work / package / "__init__.py").touch()
    entry = f"{package}.{manifest.entry}"
    text = manifest.path.read_text(encoding="utf-8")
    data = parse_toml(text, str(manifest.path))
    data["entry"] = entry
    manifest_text = _toml(data)
    name = manifest.id.replace(".", "-").replace("_", "-")
    pyproject = {
        "build-system": {"requires": ["setuptools>=61"], "build-backend": "setuptools.build_meta"},
        "project": {
            "name": f"plugbay-plugin-{name}",
            "version": str(manifest.version),
            "description": manifest.description or manifest.name,
            "requires-python": ">=3.11",
            "entry-points": {ENTRY_POINT_GROUP: {manifest.id: entry}},
        },
        "tool": {
            "setuptools": {
                "packages": [package],
                "package-data": {package: ["*", "**/*"]},
            }
        },
    }
    (work / "pyproject.toml").write_text(_toml(pyproject))
    return work, package, manifest_text


def _run_frontend(source: Path, out: Path, manifest: PluginManifest) -> Path:
    from build import BuildBackendException, BuildException, ProjectBuilder
    from build.env import DefaultIsolatedEnv

    try:
        builder = ProjectBuilder(source, sys.executable, runner=_capturing_runner)
        if builder.check_dependencies("wheel"):
            # the backend is not installed here: the frontend's own isolated environment
            with DefaultIsolatedEnv() as env:
                builder = ProjectBuilder.from_isolated_env(env, source, runner=_capturing_runner)
                env.install(builder.build_system_requires)
                env.install(builder.get_requires_for_build("wheel"))
                return Path(builder.build("wheel", out))
        return Path(builder.build("wheel", out))
    except BuildBackendException as exc:
        output = getattr(exc.exception, "output", b"") or b""
        tail = output.decode(errors="replace").strip().splitlines()[-15:]
        raise BuildError(
            f"the build backend failed: {exc.exception}",
            plugin=manifest.id,
            where=str(source),
            hint="its output ends with:\n" + "\n".join(tail) if tail else "see the backend's error",
        ) from None
    except (BuildException, OSError, PlugbayError) as exc:
        raise BuildError(
            f"the build failed: {exc}", plugin=manifest.id, where=str(source)
        ) from None


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _add_manifest(wheel: Path, package: str, manifest_text: str) -> None:
    """Put ``<package>/plugin.toml`` into the wheel and its RECORD."""
    name = f"{package}/plugin.toml"
    data = manifest_text.encode()
    rewritten = wheel.with_suffix(".tmp")
    with (
        zipfile.ZipFile(wheel) as src,
        zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        record_name = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        for item in src.infolist():
            if item.filename in (name, record_name):
                continue
            dst.writestr(item, src.read(item.filename))
        dst.writestr(name, data)
        lines = [
            line
            for line in src.read(record_name).decode().splitlines()
            if line and not line.startswith(name + ",")
        ]
        lines.insert(len(lines) - 1, f"{name},{_record_hash(data)},{len(data)}")
        dst.writestr(record_name, "\n".join(lines) + "\n")
    os.replace(rewritten, wheel)


def _toml(data: Mapping[str, Any]) -> str:
    """TOML for manifest-shaped data (scalars, arrays of scalars, tables), checked by reading it back."""
    out: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    def table(prefix: list[str], d: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in d.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            out.append(f"\n[{'.'.join(key(p) for p in prefix)}]")
        for k, v in scalars.items():
            out.append(f"{key(k)} = {value(v)}")
        for k, v in tables.items():
            table([*prefix, k], v)

    table([], data)
    text = "\n".join(out).lstrip("\n") + "\n"
    if tomllib.loads(text) != data:
        raise BuildError("the manifest could not be written back as TOML unchanged")
    return text


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
    if len(manifests) != 1:
        raise WheelError(
            f"the wheel holds {len(manifests)} plugin.toml files inside a package",
            where=str(wheel),
            hint="a plugin wheel has exactly one package with a plugin.toml beside its code",
        )
    package = dest / PurePosixPath(manifests[0]).parent
    try:
        entry = str(tomllib.loads((package / "plugin.toml").read_text("utf-8")).get("entry", ""))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return package  # the manifest's own checks say what is wrong with it
    if entry.split(":", 1)[0].split(".", 1)[0] == package.name and package.parent == dest:
        shutil.copy2(package / "plugin.toml", dest / "plugin.toml")
        return dest
    return package


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
    metadata = archive.read(f"{info_dir}/METADATA").decode("utf-8", errors="replace")
    requires = tuple(
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    )
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
        if _record_hash(archive.read(name)) != expected:
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
    scratch = Path(tempfile.mkdtemp(prefix=".plugbay-install-", dir=plugins_dir))
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
