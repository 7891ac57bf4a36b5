"""Config refusals on every path that meets them: one ``PUT …/config`` names every problem
(a value of the wrong JSON type and a required key missing together, in the CLI's
words); a bad value kept aside for another version is refused with the serving
version's problems; a start refused over several run-time keys blames each of them; a
canary or a shadow whose version cannot start as the plugin is configured answers 409,
as a load does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plugbay.api.errors import PlugbayError
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._served import api_served
from tests.conftest import PluginFactory

KNOBS = """
[config.nick]
type = "string"
default = "bob"
pattern = "^[a-z]+$"
pattern-hint = "lower-case letters only"
[config.count]
type = "integer"
default = 2
minimum = 1
maximum = 10
[config.need]
type = "string"
required = true
"""

NEED = "config key 'need' is required and has no default"


def _version(directory: Path, version: str, config: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.toml").write_text(
        f'id = "acme.svc"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n{config}'
    )
    (directory / "main.py").write_text(
        "from plugbay import UtilityPlugin\n\n\nclass P(UtilityPlugin):\n    pass\n"
    )
    return directory


def _count(maximum: int) -> str:
    return f'[config.count]\ntype = "integer"\ndefault = 2\nmaximum = {maximum}\n'


def _client(url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def test_one_put_names_a_wrong_type_and_a_missing_required_key_in_the_clis_words(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    plugins("acme.knobs", extra=KNOBS)
    # the CLI's words: a host started for the command checks every key at once
    cli = plugbay(
        "config", "acme.knobs", "nick=1bad", "count=0", "colour=red", "--json",
        "--plugins", str(plugins.root), cwd=tmp_path,
    )  # fmt: skip
    assert cli.returncode == 1, cli.stdout + cli.stderr
    said = json.loads(cli.stdout)["error"]["details"]["problems"]
    assert [p["key"] for p in said] == ["nick", "count", "colour", "need"]
    host = make_host(state_dir=tmp_path / "api-state")
    async with host, api_served(host) as served, _client(*served) as http:
        path = "/api/v1/plugins/acme.knobs/config"
        sent = {"nick": "1bad", "count": 0, "colour": "red"}
        put = await http.put(path, json={"values": sent})
        assert put.status_code == 422, put.text
        assert put.json()["error"]["details"]["problems"] == said
        assert NEED in put.json()["error"]["message"]
        # a value of the wrong JSON type ("5" for a number): the missing key beside it
        put = await http.put(path, json={"values": {"count": "5", "nick": "ab"}})
        assert put.status_code == 422, put.text
        error = put.json()["error"]
        assert [p["key"] for p in error["details"]["problems"]] == ["count", "need"]
        assert error["where"] == "run-time config: count, need"
        assert error["hint"].endswith("GET /api/v1/plugins/acme.knobs/config shows the schema")
        assert host.runtime_config("acme.knobs") == {}  # nothing kept of either attempt


async def test_a_bad_kept_value_is_refused_with_the_serving_versions_problems(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    _version(plugins.root / "svc", "1.0.0", _count(10))
    url_key = '[config.api-url]\ntype = "string"\npattern = "https://.+"\n'
    async with make_host() as host:
        host.install(_version(tmp_path / "v2", "2.0.0", _count(10) + url_key))
        with pytest.raises(PlugbayError) as refused:
            await host.set_config("acme.svc", {"api-url": "ftp://x", "count": 11})
        problems = refused.value.details["problems"]
        assert [p["key"] for p in problems] == ["api-url", "count"]
        assert problems[0]["message"].endswith("(as 2.0.0 declares it)")
        assert "11 is not a whole number of at most 10" in problems[1]["message"]
        assert refused.value.where == "run-time config: api-url, count"
        assert host.runtime_config("acme.svc") == {}


async def test_a_start_refused_over_several_run_time_keys_blames_each_of_them(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    nick = '[config.nick]\ntype = "string"\ndefault = "bob"\n'
    _version(plugins.root / "svc", "1.0.0", _count(10) + nick)
    async with make_host() as host:
        await host.set_config("acme.svc", {"count": 8, "nick": "1bad"})
        strict = nick + 'pattern = "[a-z]+"\n'
        host.install(_version(tmp_path / "v2", "2.0.0", _count(5) + strict))
        with pytest.raises(PlugbayError) as refused:
            await host.upgrade("acme.svc", "2.0.0")
        error = refused.value
        assert error.where == "run-time config set with 'plugbay config acme.svc': count, nick"
        assert "'plugbay config acme.svc --unset count --unset nick'" in str(error.hint)
        assert host.plugin("acme.svc").version == "1.0.0"  # the old version serves on


@pytest.mark.parametrize("trial", ["canary", "shadow"])
async def test_a_trial_whose_version_cannot_start_as_configured_answers_409(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path, trial: str
) -> None:
    _version(plugins.root / "svc", "1.0.0", _count(10))
    (tmp_path / "plugbay.toml").write_text('[plugins."acme.svc"]\ncount = 8\n')
    host = make_host(config_file=tmp_path / "plugbay.toml")
    async with host, api_served(host) as served, _client(*served) as http:
        host.install(_version(tmp_path / "v2", "2.0.0", _count(5)))
        answer = await http.post(f"/api/v1/plugins/acme.svc/{trial}", json={})
        assert answer.status_code == 409, answer.text
        error: dict[str, Any] = answer.json()["error"]
        assert error["code"] == "config_invalid"
        assert (
            error["message"]
            == "config key 'count' is invalid: 8 is not a whole number of at most 5"
        )
        assert error["where"] == f"{tmp_path / 'plugbay.toml'}:2"  # the line that set it
        rows = (await http.get("/api/v1/plugins")).json()
        assert [(r["version"], r["state"]) for r in rows] == [("1.0.0", "active")]
