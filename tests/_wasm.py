"""Wasm plugins for tests: C sources compiled once per content (a temp cache shared by
the session and later runs), copied into a plugin directory with its manifest.

The compiled ``.wasm`` is a build output, never committed: tests build it here with
the same compiler and SDK as ``plugbay build`` (``make wasm-toolchain`` installs it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from plugbay.pdk import wasm_build
from plugbay.pdk.wasm_build import build_wasm, find_clang, find_componentize, sdk_dir

CACHE = Path(tempfile.gettempdir()) / f"plugbay-test-wasm-{os.getuid()}"

needs_toolchain = pytest.mark.skipif(
    shutil.which("clang") is None and shutil.which("clang-14") is None,
    reason="no clang for wasm32-wasi here: run 'make wasm-toolchain' (make test does)",
)


def write_plugin(
    directory: Path,
    plugin_id: str,
    source: str,
    manifest: str,
    version: str = "1.0.0",
    *,
    language: str = "c",
) -> Path:
    """A Wasm plugin at ``directory``: ``src/plugin.c`` (or ``src/app.py``) and a
    plugin.toml whose header this writes (``manifest`` is the rest: [commands.*],
    [resources], ...), with its module built (from the cache when this source was built
    before)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "src").mkdir(exist_ok=True)
    name = "plugin.c" if language == "c" else "app.py"
    (directory / "src" / name).write_text(source)
    (directory / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "{version}"\ntype = "utility"\nruntime = "wasm"\n'
        f'entry = "build/plugin.wasm"\n\n[wasm]\nlanguage = "{language}"\n'
        f'sources = ["src/{name}"]\n\n{manifest}'
    )
    sdk = sdk_dir()
    key = hashlib.sha256(
        source.encode()
        + Path(wasm_build.__file__).read_bytes()  # how it is compiled
        + (sdk / "plugbay.c").read_bytes()
        + (sdk / "plugbay.h").read_bytes()
        + (sdk / "plugin.wit").read_bytes()
    ).hexdigest()[:32]
    cached = CACHE / f"{key}.wasm"
    module = directory / "build" / "plugin.wasm"
    if not cached.is_file():
        find_clang() if language == "c" else find_componentize()
        built = build_wasm(directory)
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.part")
        shutil.copyfile(built.module, partial)
        os.replace(partial, cached)
    else:
        module.parent.mkdir(exist_ok=True)
        shutil.copyfile(cached, module)
    return directory


def template_source() -> str:
    """The C of the ``plugbay new --lang c`` template (what a new plugin starts from)."""
    root = Path(__file__).resolve().parents[1] / "src/plugbay/pdk/templates/wasm-c"
    return (root / "src" / "plugin.c").read_text()


def template_manifest() -> str:
    """The template's manifest from its [commands] on (the header is write_plugin's)."""
    root = Path(__file__).resolve().parents[1] / "src/plugbay/pdk/templates/wasm-c"
    text = (root / "plugin.toml").read_text()
    return text[text.index("[commands.") :]


def python_template() -> tuple[str, str]:
    """The ``plugbay new --lang python-wasm`` template: (src/app.py, its [commands] on)."""
    root = Path(__file__).resolve().parents[1] / "src/plugbay/pdk/templates/wasm-python"
    text = (root / "plugin.toml").read_text()
    return (root / "src" / "app.py.tmpl").read_text(), text[text.index("[commands.") :]


def componentize_beside() -> bool:
    """componentize-py installed beside this interpreter (a venv not on PATH)."""
    import sys

    return (Path(sys.executable).parent / "componentize-py").is_file()
