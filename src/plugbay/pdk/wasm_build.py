"""``plugbay build`` and ``plugbay new --lang c`` for Wasm plugins written in C.

A C plugin's ``[wasm] sources`` are compiled with Debian's clang for
``wasm32-wasi`` (wasi-libc), beside the SDK's ``plugbay.c`` (the ABI's exports,
``pdk/wasm_sdk``), as a WASI *reactor* (a library the host calls, with no
``main``). The module is written to the manifest's ``entry`` whole or not at
all. ``make wasm-toolchain`` installs the compiler when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Final

from plugbay.api.errors import PlugbayError
from plugbay.model._toml_lines import key_line
from plugbay.model.manifest import PluginManifest, load_manifest
from plugbay.pdk._analysis.base import Finding
from plugbay.pdk._scratch import scratch_beside
from plugbay.pdk.errors import TemplateError

__all__ = [
    "WasmBuild",
    "WasmBuildError",
    "build_wasm",
    "check_wasm_plugin",
    "create_c_plugin",
    "create_wasm_plugin",
    "find_clang",
    "find_componentize",
    "sdk_dir",
]

_CLANGS: Final = ("clang", "clang-16", "clang-15", "clang-14")
_SYSROOTS: Final = ("/usr", "/usr/share/wasi-sysroot")


class WasmBuildError(PlugbayError):
    """A Wasm plugin's module could not be built (no compiler, or the C did not compile)."""

    code = "wasm_build_failed"


@dataclass(frozen=True)
class WasmBuild:
    manifest: PluginManifest
    module: Path
    seconds: float
    command: tuple[str, ...]

    @property
    def protocol(self) -> Path:
        """The typed proxy's class for callers, written beside the module."""
        return self.module.parent / "api.py"


def sdk_dir() -> Path:
    """The C SDK: ``plugbay.h`` and ``plugbay.c``."""
    return Path(str(resources.files("plugbay.pdk") / "wasm_sdk"))


def find_clang() -> str:
    """A clang that targets wasm32-wasi with wasi-libc, or a WasmBuildError saying how to
    install one."""
    for name in _CLANGS:
        found = shutil.which(name)
        if found and any(
            Path(root, "include/wasm32-wasi/stdlib.h").is_file() for root in _SYSROOTS
        ):
            return found
    raise WasmBuildError(
        "no C compiler for wasm32-wasi: clang, lld and wasi-libc are needed",
        hint="run 'make wasm-toolchain' (or: apt-get install clang lld wasi-libc "
        "libclang-rt-dev-wasm32)",
    )


def build_wasm(path: Path) -> WasmBuild:
    """Compile the plugin at ``path`` (a directory or its plugin.toml) into its module."""
    manifest = load_manifest(path)
    declared = manifest.wasm
    root = manifest.root
    if manifest.runtime != "wasm" or declared is None or root is None:
        raise WasmBuildError(
            "is not a Wasm plugin", plugin=manifest.id, where=manifest.location,
            hint='a Wasm plugin\'s manifest says runtime = "wasm"',
        )  # fmt: skip
    if not declared.sources:
        raise WasmBuildError(
            "declares no sources to build its module from",
            plugin=manifest.id,
            where=manifest.location,
            hint='[wasm] sources = ["src/plugin.c"]',
        )
    sources = [root / s for s in declared.sources]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise WasmBuildError(
            f"its source {missing[0]} does not exist", plugin=manifest.id,
            where=manifest.location, hint="fix [wasm] sources",
        )  # fmt: skip
    target = root / declared.module
    target.parent.mkdir(parents=True, exist_ok=True)
    if declared.language == "python":
        return _componentize(manifest, sources, target)
    sysroot = next(r for r in _SYSROOTS if Path(r, "include/wasm32-wasi").is_dir())
    fd, partial = tempfile.mkstemp(prefix=".build-", suffix=".wasm", dir=target.parent)
    os.close(fd)
    sdk = sdk_dir()
    command = (
        find_clang(),
        "--target=wasm32-wasi",
        f"--sysroot={sysroot}",
        "-mexec-model=reactor",
        "-O2",
        "-Wall",
        *declared.cflags,
        f"-I{sdk}",
        # the stack below the data: a stack that overflows traps at once instead of
        # overwriting the plugin's globals; names kept (not debug info), so that a
        # trap says in which function it happened
        "-Wl,--stack-first",
        "-Wl,--strip-debug",
        "-o",
        partial,
        *map(str, sources),
        str(sdk / "plugbay.c"),
    )
    return _run(manifest, command, partial, target, "C", "the SDK is in plugbay.h")


def _run(
    manifest: PluginManifest,
    command: tuple[str, ...],
    partial: str,
    target: Path,
    what: str,
    hint: str,
    cwd: Path | None = None,
) -> WasmBuild:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=False, cwd=cwd
        )
        if done.returncode != 0:
            output = (done.stderr.strip() or done.stdout.strip()).split("Stack backtrace:")[0]
            output = output.strip()[-4000:]
            raise WasmBuildError(
                f"its {what} did not compile:\n{output}",
                plugin=manifest.id,
                where=manifest.location,
                hint=f"fix the errors above; {hint}",
            )
        os.chmod(partial, 0o644)  # a build output like any other, not a secret
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    built = WasmBuild(manifest, target, time.perf_counter() - started, command)
    built.protocol.write_text(manifest.wasm.protocol())
    return built


def find_componentize() -> str:
    """componentize-py (the ``wasm-python`` extra), or a WasmBuildError naming it."""
    found = shutil.which("componentize-py")
    beside = Path(sys.executable).parent / "componentize-py"
    if found is None and beside.is_file():
        found = str(beside)
    if found is None:
        raise WasmBuildError(
            "no componentize-py to build a Python plugin into a component",
            hint="pip install 'plugbay[wasm-python]' (make's set-up installs it)",
        )
    return found


def _componentize(manifest: PluginManifest, sources: list[Path], target: Path) -> WasmBuild:
    """A Python plugin's first source (its module) into a component of the plugbay world."""
    app = sources[0].resolve()
    fd, partial = tempfile.mkstemp(prefix=".build-", suffix=".wasm", dir=target.parent.resolve())
    os.close(fd)
    command = (
        find_componentize(),
        "-d",
        str(sdk_dir() / "plugin.wit"),
        "-w",
        "plugin",
        "componentize",
        app.stem,
        "-p",
        str(app.parent),
        "-o",
        partial,
    )
    return _run(
        manifest, command, partial, target, "Python", "the world is pdk/wasm_sdk/plugin.wit",
        cwd=app.parent,
    )  # fmt: skip


def create_c_plugin(plugin_id: str, directory: Path | None = None) -> Path:
    """A Wasm plugin in C from the ``wasm-c`` template (see :func:`create_wasm_plugin`)."""
    return create_wasm_plugin("c", plugin_id, directory)


def create_wasm_plugin(lang: str, plugin_id: str, directory: Path | None = None) -> Path:
    """A Wasm plugin in ``lang`` (``c`` or ``python``) from its template, at ``directory``
    (default: ``./<id with dashes>``); refused when the directory exists."""
    if lang not in ("c", "python"):
        raise TemplateError(f"no Wasm template for {lang!r}", hint="c or python")
    target = Path(directory or plugin_id.replace(".", "-"))
    if target.exists():
        raise TemplateError(
            f"{target} already exists", hint="choose another --dir, or remove it first"
        )
    template = Path(str(resources.files("plugbay.pdk") / "templates" / f"wasm-{lang}"))
    scratch = scratch_beside(target.parent.resolve(), ".new-")
    try:
        for source in template.rglob("*"):
            if source.is_dir():
                continue
            relative = source.relative_to(template)
            name = ".gitignore" if relative.name == "gitignore" else relative.name
            name = name.removesuffix(".tmpl")
            out = scratch / relative.parent / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(Template(source.read_text()).safe_substitute(plugin_id=plugin_id))
        load_manifest(scratch)  # what it wrote parses (an id that is not valid is refused)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def check_wasm_plugin(manifest: PluginManifest, *, load: bool = True) -> list[Finding]:
    """``plugbay validate`` of a Wasm plugin: its module is built, and (``load``) compiles
    and speaks the ABI. The manifest, commands and types were checked when it parsed."""
    declared = manifest.wasm
    root = manifest.root
    if declared is None or root is None:
        return []
    module = root / declared.module
    where = str(manifest.path or root)
    unusable = _unusable_permissions(manifest, where)
    if not module.is_file():
        hint = f"run 'plugbay build {root}'" if declared.sources else "add [wasm] sources"
        built = Finding("error", "entry", f"its module {module} is not built", where, None, hint)
        return [*unusable, built]
    if not load:
        return unusable
    return unusable + _check_module(module)


def _unusable_permissions(manifest: PluginManifest, where: str) -> list[Finding]:
    """Permissions a Wasm module has no way to use, granted or not: a module has no
    sockets, no environment and no processes (WASI preview 1; docs/wasm-plugins.md)."""
    asked = manifest.permissions
    unusable = [f"network:{n}" for n in asked.network] + [f"env:{e}" for e in asked.env]
    unusable += ["subprocess"] if asked.subprocess else []
    if not unusable:
        return []
    path = manifest.path
    text = path.read_text() if path is not None and path.is_file() else ""
    line = key_line(text, ("permissions",)) if text else None
    return [
        Finding(
            "warning",
            "permissions",
            f"asks for {', '.join(unusable)}, which a Wasm plugin cannot use even when "
            "granted: a module has no sockets, no environment and no processes",
            where,
            line,
            "drop them from [permissions]; reach the network through a service of another "
            "plugin ([services] requires), and take settings from [config]",
            text.splitlines()[line - 1] if line else None,
        )
    ]


def _check_module(module: Path) -> list[Finding]:
    """The built module compiles and speaks the ABI."""
    where = str(module)
    try:
        from plugbay.isolation import _wasm_abi
    except ImportError:
        return [
            Finding(
                "info",
                "import",
                "not loaded here: wasmtime is not installed",
                where,
                None,
                "pip install 'plugbay[wasm]' to check the module too",
            )
        ]
    try:
        _wasm_abi.check_module(_wasm_abi.load_program(module, None))
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [
            Finding(
                "error",
                "entry",
                f"its module does not load: {text}",
                where,
                None,
                "build it from the SDK ('plugbay new --lang c'); docs/wasm-plugins.md",
            )
        ]
    return []
