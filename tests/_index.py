"""Plugin wheels written directly (no build frontend), and a static file server for an index."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests._wheels import write_wheel


def plugin_wheel(
    dest: Path,
    plugin_id: str,
    version: str,
    *,
    dependencies: Mapping[str, str] | None = None,
    description: str = "",
    extra: str = "",
) -> Path:
    """A plugin wheel of ``plugin_id`` whose command ``version`` answers ``version``."""
    package = plugin_id.replace(".", "_").replace("-", "_")
    deps = "".join(f'"{k}" = "{v}"\n' for k, v in (dependencies or {}).items())
    manifest = (
        f'id = "{plugin_id}"\nversion = "{version}"\ntype = "utility"\n'
        f'entry = "{package}.main:P"\ndescription = "{description}"\n{extra}'
        + (f"\n[dependencies]\n{deps}" if deps else "")
    )
    code = (
        "from plugbay import UtilityPlugin, command\n\n\nclass P(UtilityPlugin):\n"
        f'    @command\n    def version(self) -> str:\n        return "{version}"\n'
    )
    dist = package.replace("_", "-")
    return write_wheel(
        dest,
        dist,
        version,
        {
            f"{package}/__init__.py": "",
            f"{package}/main.py": code,
            f"{package}/plugin.toml": manifest,
            f"{package}-{version}.dist-info/entry_points.txt": (
                f"[plugbay.plugins]\n{plugin_id} = {package}.main:P\n"
            ),
        },
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP from python's own static file server on a free port of
    127.0.0.1, for as long as the block runs; yields its URL."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
