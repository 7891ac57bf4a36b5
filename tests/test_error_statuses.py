"""Each error code answers the HTTP status that says what went wrong, and where.

400 only when the request itself cannot be done; 404 a plugin or command that is not
there; 409 when the request was fine and the plugin, as it is now or on disk, cannot do
it; 422 something the request gave is malformed; 502 the plugin failed; 503 the host
cannot serve it now (a later try may work); 504 out of time. Every code of
``plugbay.api.errors`` is walked, against the rule written out here, the table of
``docs/http-api.md`` and a real host's answers.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import plugbay
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
    # codes of other modules, each decided, none inherited
    "host_locked": 423,
    "python_environment": 409,
    "shipment_refused": 409,
    "sandbox_policy_invalid": 422,
    "sandbox_unavailable": 501,
    "quota_unavailable": 501,
    "not_supported": 501,
    "usage_error": 400,
    "pdk_error": 400,
    "template_error": 400,
    "build_error": 409,
    "wasm_build_failed": 409,
    "wheel_error": 422,
    "signature_error": 422,
    "index_error": 502,
}

PACKAGE = Path(plugbay.__file__).resolve().parent
#: a class attribute ``code = "..."``: an error kind's code
_CODE = re.compile(r'^\s+code(?:: ClassVar\[str\])? = "([a-z_]+)"', re.MULTILINE)


def _defined() -> dict[str, str]:
    """Every error code defined anywhere in the package, by the module defining it."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("plugbay", *path.relative_to(PACKAGE).with_suffix("").parts))
        for code in _CODE.findall(path.read_text()):
            found[code] = module
    return found


def _kinds() -> dict[str, type[PlugbayError]]:
    """Every error class of the package, by code (each module defining one imported)."""
    for module in set(_defined().values()):
        importlib.import_module(module)
    found: dict[str, type[PlugbayError]] = {}
    unseen: list[type[PlugbayError]] = [PlugbayError]
    while unseen:
        kind = unseen.pop()
        if kind.__module__.startswith("plugbay."):
            found[kind.code] = kind
        unseen.extend(kind.__subclasses__())
    return found


@pytest.mark.parametrize("code", sorted(_kinds()))
def test_every_code_answers_the_status_that_fits(code: str) -> None:
    assert code in EXPECTED, f"{code} has no status decided: add it here and to the table"
    kind = _kinds()[code]
    error = kind.__new__(kind)  # as a worker's is re-made: some kinds take more arguments
    PlugbayError.__init__(error, "what happened", plugin="acme.x", hint="what to do")
    assert status_for(error) == EXPECTED[code], code


def test_every_code_is_in_the_rule() -> None:
    assert set(EXPECTED) == set(_kinds())


def test_a_code_anywhere_in_the_package_has_a_decided_status() -> None:
    defined = _defined()
    assert set(errors.__all__) <= {k.__name__ for k in _kinds().values()} | {"error_from_dict"}
    undecided = {code: module for code, module in defined.items() if code not in EXPECTED}
    assert not undecided, f"no status decided for {undecided}: add each here and to the table"
    assert set(defined) == set(EXPECTED)


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


# -- who failed: the plugin's own error, not the request's ---------------------------------

RAISES_OF_ITS_OWN = """
from plugbay import UtilityPlugin, command
from plugbay.api.errors import ConfigError, PluginNotFound

class P(UtilityPlugin):
    @command
    def configured(self) -> str:
        raise ConfigError("the plugin's own setting is off", where="its own table")

    @command
    def lookup(self) -> str:
        raise PluginNotFound("no such thing here", plugin="acme.ghost")

    @command
    def add(self, a: int, b: int) -> int:
        return a + b
"""


@pytest.fixture(params=["inline", "sandboxed"])
async def raiser(
    request: pytest.FixtureRequest, plugins: PluginFactory, make_host: Callable[..., Host]
) -> AsyncIterator[Served]:
    plugins("acme.raiser", RAISES_OF_ITS_OWN)
    plugins("acme.calc")
    inline = ["acme.raiser", "acme.calc"] if request.param == "inline" else ["acme.calc"]
    async with make_host(inline=inline) as host, api_served(host) as (url, token):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            yield Served(host, http)


async def test_a_config_error_a_plugin_raises_in_its_command_is_502_not_422(
    raiser: Served,
) -> None:
    r = await raiser.http.post("/api/v1/plugins/acme.raiser/commands/configured", json={})
    assert r.status_code == 502, r.text
    error = _error(r)
    assert error["code"] == "config_invalid"  # clients matching on the code still can
    assert error["message"] == "the plugin's own setting is off"
    assert error["details"]["raised_by"] == "acme.raiser"
    ok = await raiser.http.post("/api/v1/plugins/acme.calc/commands/ping", json={})
    assert ok.json() == {"result": "pong from acme.calc 1.0.0"}


async def test_a_plugin_not_found_a_plugin_raises_is_502_not_404(raiser: Served) -> None:
    r = await raiser.http.post("/api/v1/plugins/acme.raiser/commands/lookup", json={})
    assert r.status_code == 502, r.text
    error = _error(r)
    assert "no such thing here" in error["message"]
    # inline, its own kind with the mark; sandboxed, a kind only the host may raise is
    # shown as the plugin's own error, the claim kept
    assert error["details"].get("raised_by") == "acme.raiser" or (
        error["code"] == "plugin_raised" and error["details"]["claimed"] == "plugin_not_found"
    )


async def test_the_hosts_own_refusal_of_the_request_keeps_its_4xx(raiser: Served) -> None:
    bad = await raiser.http.post("/api/v1/plugins/acme.raiser/commands/add", json={"a": "x"})
    assert bad.status_code == 422, bad.text
    assert _error(bad)["code"] == "parameter_invalid"
    assert "raised_by" not in _error(bad)["details"]
    missing = await raiser.http.post("/api/v1/plugins/acme.ghost/commands/add", json={})
    assert missing.status_code == 404 and _error(missing)["code"] == "plugin_not_found"
    none = await raiser.http.post("/api/v1/plugins/acme.raiser/commands/nothing", json={})
    assert none.status_code == 404 and _error(none)["code"] == "command_not_found"
    fine = await raiser.http.post("/api/v1/plugins/acme.raiser/commands/add", json={"a": 1, "b": 2})
    assert fine.json() == {"result": 3}


ASKS_FROM_A_WORKER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def ask(self) -> str:
        return await self.context.services.require("acme.speller").spell(text="x")
"""


async def test_a_sandboxed_plugin_passing_on_a_missing_service_is_503_and_says_so(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.asker", ASKS_FROM_A_WORKER, extra='[services.optional]\n"acme.speller" = ">=1"\n')
    async with make_host(inline=[]) as host, api_served(host) as (url, token):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            r = await http.post("/api/v1/plugins/acme.asker/commands/ask", json={})
    assert r.status_code == 503, r.text
    error = _error(r)
    assert error["code"] == "service_unavailable"
    assert "service 'acme.speller'" in error["message"]
    assert error["details"]["relayed_by"] == "acme.asker"  # the host's refusal, passed on
    assert "raised_by" not in error["details"]


MISUSES_THE_API = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    async def announce(self) -> int:
        return await self.context.events.emit("acme.told", {"lock": object()})

    @command
    async def keep(self) -> None:
        await self.context.storage.set("", 1)

    @command
    async def ask(self) -> str:
        return await self.context.services.require("acme.speller").spell(text="x")
"""


@pytest.mark.parametrize("backend", ["inline", "sandboxed"])
async def test_a_plugin_api_refusal_of_the_plugins_own_data_is_its_own_in_both_backends(
    backend: str, plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """The plugin API refusing what the plugin gave it (an event payload that is not
    plain data, an empty storage key) is the plugin's own error, ``raised_by``, inline as
    in a worker (where that code runs in the plugin's process); a refusal of the host's
    (a service nobody provides) is passed on, ``relayed_by``, in both."""
    plugins("acme.user", MISUSES_THE_API, extra='[services.optional]\n"acme.speller" = ">=1"\n')
    plugins("acme.calc")
    inline = ["acme.user", "acme.calc"] if backend == "inline" else ["acme.calc"]
    async with make_host(inline=inline) as host, api_served(host) as (url, token):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            announce = await http.post("/api/v1/plugins/acme.user/commands/announce", json={})
            keep = await http.post("/api/v1/plugins/acme.user/commands/keep", json={})
            ask = await http.post("/api/v1/plugins/acme.user/commands/ask", json={})
            ok = await http.post("/api/v1/plugins/acme.calc/commands/ping", json={})
    assert announce.status_code == 502, announce.text
    error = _error(announce)
    assert error["code"] == "parameter_invalid"
    assert "its field 'lock' is not plain data" in error["message"]
    assert error["details"]["raised_by"] == "acme.user"
    assert error["details"]["raised_at"]["function"] == "announce"  # the author's line
    assert keep.status_code == 502, keep.text
    assert "storage: a key must be a non-empty string" in _error(keep)["message"]
    assert _error(keep)["details"]["raised_by"] == "acme.user"
    assert ask.status_code == 503, ask.text
    assert _error(ask)["details"] == {"relayed_by": "acme.user"}
    assert ok.json() == {"result": "pong from acme.calc 1.0.0"}


ASKS_FOR_A_SECRET = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def token(self) -> str:
        return self.context.secrets.get("api-key")
"""


@pytest.mark.parametrize("backend", ["inline", "sandboxed"])
async def test_a_secret_not_granted_is_the_hosts_refusal_passed_on_alike_in_both_backends(
    backend: str, plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """The host refused the plugin a secret it was not granted; the plugin let that
    propagate: 502, ``relayed_by`` naming it, with the same words and details keys
    inline as sandboxed (a client matches on them, whichever backend serves)."""
    plugins("acme.nosy", ASKS_FOR_A_SECRET)
    plugins("acme.calc")
    inline = ["acme.nosy", "acme.calc"] if backend == "inline" else ["acme.calc"]
    async with make_host(inline=inline) as host, api_served(host) as (url, token):
        assert host.plugin("acme.nosy").isolation == ("process", "inline")[backend == "inline"]
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            denied = await http.post("/api/v1/plugins/acme.nosy/commands/token", json={})
            ok = await http.post("/api/v1/plugins/acme.calc/commands/ping", json={})
    assert denied.status_code == 502, denied.text
    error = _error(denied)
    assert error["code"] == "permission_denied"
    assert error["message"] == "secret 'api-key' was not granted"
    assert "plugbay grant acme.nosy secret:api-key" in error["hint"]
    assert error["details"] == {
        "operation": "secret api-key",
        "permission": "secret:api-key",
        "layer": "secrets",
        "relayed_by": "acme.nosy",
    }
    assert ok.json() == {"result": "pong from acme.calc 1.0.0"}


async def test_a_load_refused_by_a_value_in_the_host_config_file_is_409(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    plugins(
        "acme.greeter",
        extra='[config.greeting]\ntype = "string"\ndefault = "Hello"\nmax-length = 5\n',
    )
    toml = tmp_path / "plugbay.toml"
    toml.write_text('[plugins."acme.greeter"]\ngreeting = "far too long a greeting"\n')
    async with make_host(config_file=toml) as host, api_served(host) as (url, token):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            for operation in ("load", "enable"):
                r = await http.post(f"/api/v1/plugins/acme.greeter/{operation}")
                assert r.status_code == 409, (operation, r.text)
                error = _error(r)
                assert error["code"] == "config_invalid"
                assert error["where"] == f"{toml}:2"  # the file and the line that set it
                assert "at most 5 characters" in error["message"]
