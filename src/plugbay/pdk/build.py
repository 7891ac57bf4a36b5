"""Building a plugin wheel (the spec's ``DevTools.compiler``): ``plugbay build``.

``build_plugin`` runs the standard ``build`` frontend (PEP 517) on the plugin's
package and adds the manifest to the wheel as ``<package>/plugin.toml`` (with
its ``RECORD`` entry), which is where the host looks for the manifest of an
installed distribution (``plugbay.pdk.wheels`` reads it). A SHA-256 digest is
written beside the wheel (``<wheel>.sha256``, ``sha256sum`` format).

A plugin kept as a directory with a ``plugin.toml`` is built too: it is copied
into a package named after its id, with a generated ``pyproject.toml``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import (
    PluginManifest,
    load_manifest,
    parse_toml,
)
from plugbay.pdk.analyzer import validate_plugin
from plugbay.pdk.errors import BuildError
from plugbay.pdk.wheels import ENTRY_POINT_GROUP, file_sha256, record_hash

__all__ = ["BuildResult", "build_plugin"]


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What ``plugbay build`` made: the spec's ``BuildResult``."""

    wheel: Path
    sha256: Path
    digest: str
    manifest: PluginManifest


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
        lines.insert(len(lines) - 1, f"{name},{record_hash(data)},{len(data)}")
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
