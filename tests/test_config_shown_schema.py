"""A plugin's config schema is shown alike whatever the path: ``plugbay config ID --json``
with no host running (a host started in the process) and through a running host,
``GET /api/v1/plugins/{id}/config`` and ``GET /api/v1/plugins/{id}``'s manifest: each
``pattern`` anchored as a JSON Schema validator must read it, ``pattern-written`` as the
manifest has it (``ConfigField.describe``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory

SCHEMA = """
[config.code]
type = "string"
default = "ab"
pattern = "[a-z]+"
[config.count]
type = "integer"
default = 2
minimum = 1
"""

#: the schema every path shows
SHOWN = {
    "code": {
        "type": "string",
        "required": False,
        "default": "ab",
        "pattern": "^(?:[a-z]+)$(?!\\n)",
        "pattern-written": "[a-z]+",
    },
    "count": {"type": "integer", "required": False, "default": 2, "minimum": 1},
}


def _cli_schema(cwd: Path) -> Any:
    shown = plugbay("config", "acme.knobs", "--json", cwd=cwd)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return json.loads(shown.stdout)["schema"]


def test_the_config_schema_is_the_same_in_process_through_a_host_and_in_the_plugins_info(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.knobs", extra=SCHEMA)
    assert _cli_schema(tmp_path) == SHOWN  # no host running: one started in the process
    with plugbay_run(tmp_path) as host:
        assert _cli_schema(tmp_path) == SHOWN  # through the running host's API
        with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as http:
            config = http.get("/api/v1/plugins/acme.knobs/config").json()
            info = http.get("/api/v1/plugins/acme.knobs").json()
    assert config["schema"] == SHOWN
    assert info["manifest"]["config"] == SHOWN
    table = " ".join(plugbay("config", "acme.knobs", cwd=tmp_path).stdout.split())
    assert "pattern [a-z]+" in table and "(?!" not in table, table  # people read it as written
