"""Runs one block of a document (see tests/_docblocks.py), in the document's directory.

python _docrun.py python BLOCK.py [--host]   execute (top-level await allowed)
python _docrun.py check-python FILE          compile
python _docrun.py check-toml FILE            a manifest by the manifest model, else
                                             the host config as the host reads it
python _docrun.py check-json FILE            parse
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any


def execute(source: str, filename: str, *, host: bool) -> None:
    """Run a block as a program; one with top-level ``await`` on an event loop of its own."""
    code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": filename}
    if host:
        config = Path("plugbay.toml") if Path("plugbay.toml").is_file() else None
        asyncio.run(_with_host(code, namespace, config))
    elif code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)


async def _with_host(code: Any, namespace: dict[str, Any], config: Path | None) -> None:
    from plugbay import Host

    with tempfile.TemporaryDirectory() as state:
        async with Host("plugins", state_dir=state, config_file=config) as running:
            namespace["host"] = running
            result = eval(code, namespace)
            if asyncio.iscoroutine(result):
                await result


def check_toml(path: Path) -> str:
    text = path.read_text()
    data = tomllib.loads(text)
    if "tool" in data and "plugbay" in data["tool"]:
        from plugbay.model.manifest import parse_manifest

        parse_manifest(text, path=path, table=("tool", "plugbay"))
        return "manifest ([tool.plugbay])"
    if "id" in data and "entry" in data:
        from plugbay.model.manifest import parse_manifest

        parse_manifest(text, path=path)
        return "manifest"
    if set(data) <= {"dependencies", "optional-dependencies", "services", "config",
                     "permissions", "resources"}:  # fmt: skip
        # a manifest's tables on their own: checked within a minimal manifest
        from plugbay.model.manifest import parse_manifest

        head = 'id = "acme.example"\nversion = "1.0.0"\ntype = "utility"\nentry = "m:P"\n'
        parse_manifest(head + text, path=path)
        return "manifest tables"
    from plugbay.runtime.host import Host

    host = Host(None, state_dir=None, config_file=path, entry_points=False)
    host._read_config_file()
    host._monitor_settings()
    return "host config"


def main(argv: list[str]) -> int:
    mode, name = argv[0], Path(argv[1])
    if mode == "python":
        execute(name.read_text(), str(name), host="--host" in argv)
    elif mode == "check-python":
        compile(name.read_text(), str(name), "exec")
        print(f"compiled {name}")
    elif mode == "check-toml":
        print(f"valid {check_toml(name)}: {name}")
    elif mode == "check-json":
        text = name.read_text()
        try:
            json.loads(text)
        except json.JSONDecodeError:  # JSON Lines (a recording): each line is one document
            for line in filter(str.strip, text.splitlines()):
                json.loads(line)
        print(f"valid JSON: {name}")
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
