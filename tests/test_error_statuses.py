"""Each error code answers the HTTP status that says what went wrong, and where.

400 only when the request itself cannot be done; 404 a plugin or command that is not
there; 409 when the request was fine and the plugin, as it is now or on disk, cannot do
it; 422 something the request gave is malformed; 502 the plugin failed; 503 the host
cannot serve it now (a later try may work); 504 out of time. Every code of
``plugbay.api.errors`` is walked, against the rule written out here, the table of
``docs/http-api.md`` and a real host's answers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.api import errors
from plugbay.api.errors import PlugbayError
from plugbay.runtime.host import Host
from plugbay.web._errors import status_for
from plugbay.web._responses import ERROR_TEXT
from tests._served import api_served
from tests.conftest import PluginFactory

DOC = Path(__file__).resolve().parents[1] / "docs" / "http-api.md"

#: the rule, written out independently of the host's table
EXPECTED: dict[str, int] = {
    "plugbay_error": 400,
    "plugin_not_found": 404,
    "command_not_found": 404,
    "parameter_invalid": 422,
    "config_invalid": 422,
    "version_invalid": 422,
    "range_invalid": 422,
    "plugin_state": 409,
    "plugin_has_dependents": 409,
    "plugin_load_failed": 409,
    "plugin_init_failed": 409,
    "reload_failed": 409,
    "manifest_invalid": 409,
    "plugin_duplicate": 409,
    "dependency_conflict": 409,
    "dependency_missing": 409,
    "dependency_cycle": 409,
    "plugin_raised": 502,
    "plugin_crashed": 502,
    "resource_limit": 502,
    "result_invalid": 502,
    "permission_denied": 502,
    "storage_full": 502,
    "metric_invalid": 502,
    "plugin_timeout": 504,
    "service_unavailable": 503,
    "host_state": 503,
    "state_error": 503,
}


def _kinds() -> dict[str, type[PlugbayError]]:
    """Every error class of ``plugbay.api.errors``, by code."""
    found = {}
    for name in errors.__all__:
        kind = getattr(errors, name)
        if isinstance(kind, type) and issubclass(kind, PlugbayError):
            found[kind.code] = kind
    return found


@pytest.mark.parametrize("code", sorted(_kinds()))
def test_every_code_answers_the_status_that_fits(code: str) -> None:
    assert code in EXPECTED, f"{code} has no status decided: add it here and to the table"
    error = _kinds()[code]("what happened", plugin="acme.x", hint="what to do")
    assert status_for(error) == EXPECTED[code], code


def test_every_code_is_in_the_rule() -> None:
    assert set(EXPECTED) == set(_kinds())


def test_a_full_disk_under_the_state_is_507() -> None:
    full = errors.StateError("the disk is full", details={"disk_full": True})
    assert status_for(full) == 507


def _documented() -> dict[str, int]:
    text = DOC.read_text()
    table = text[text.index("| status | codes |") :].split("\n\n", 1)[0]
    out: dict[str, int] = {}
    for row in table.splitlines()[2:]:
        status, codes = (cell.strip() for cell in row.strip("|").split("|", 1))
        listed = re.sub(r"\([^)]*\)", "", codes)  # a note in brackets names no code
        for code in re.findall(r"`([a-z_]+)`", listed):
            assert code not in out, f"{code} is in the table twice"
            out[code] = int(status)
    return out


def test_the_documented_table_says_what_the_host_answers() -> None:
    assert _documented() == EXPECTED
    assert set(EXPECTED.values()) <= set(ERROR_TEXT)  # each has its words in the document


# -- a real host, over HTTP ---------------------------------------------------------------

NEEDS_A_SERVICE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def ask(self) -> str:
        return self.context.services.require("acme.speller").spell("x")
"""


@dataclass
class Served:
    host: Host
    http: httpx.AsyncClient


@pytest.fixture
async def served(plugins: PluginFactory, make_host: Callable[..., Host]) -> AsyncIterator[Served]:
    plugins(
        "acme.asker",
        NEEDS_A_SERVICE,
        extra='[services.optional]\n"acme.speller" = ">=1"\n',
    )
    plugins("acme.calc")
    async with make_host() as host, api_served(host) as (url, token):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            yield Served(host, http)


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_a_service_nobody_provides_is_503_and_the_host_serves_on(served: Served) -> None:
    r = await served.http.post("/api/v1/plugins/acme.asker/commands/ask", json={})
    assert r.status_code == 503, r.text
    assert _error(r)["code"] == "service_unavailable"
    assert "service 'acme.speller'" in _error(r)["message"]
    ok = await served.http.post("/api/v1/plugins/acme.calc/commands/ping", json={})
    assert ok.status_code == 200


async def test_reloading_a_plugin_whose_manifest_broke_on_disk_is_409(
    served: Served, plugins: PluginFactory
) -> None:
    manifest = next(plugins.root.glob("acme.calc-*")) / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('type = "utility"', 'type = "gadget"'))
    r = await served.http.post("/api/v1/plugins/acme.calc/reload")
    assert r.status_code == 409, r.text
    error = _error(r)
    assert error["code"] in ("manifest_invalid", "reload_failed")
    assert "gadget" in error["text"]
    still = await served.http.post("/api/v1/plugins/acme.calc/commands/ping", json={})
    assert still.json() == {"result": "pong from acme.calc 1.0.0"}  # the old one serves on
