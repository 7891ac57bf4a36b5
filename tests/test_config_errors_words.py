"""A config value the plugin's schema refuses is refused in the operator's words, however
it is set (``plugbay config``, the API the dashboard's form uses, ``plugbay.toml`` at
start): the key, the value given (never a secret one), what the key allows, and what to
do; a ``pattern`` said by its ``pattern-hint``, and matched against the whole value."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory

SCHEMA = """
[config.nick]
type = "string"
default = "bob"
pattern = "^[a-z]+$"
pattern-hint = "lower-case letters only"
[config.code]
type = "string"
default = "ab"
pattern = "[a-z]+"
description = "Two or more letters."
[config.mode]
type = "string"
default = "fast"
enum = ["fast", "slow"]
[config.count]
type = "integer"
default = 2
minimum = 1
maximum = 10
[config.ratio]
type = "number"
default = 0.5
minimum = 0
maximum = 1
[config.name]
type = "string"
default = "abc"
min-length = 2
max-length = 5
[config.tags]
type = "array"
items = "string"
default = ["a"]
min-length = 1
max-length = 3
[config.ports]
type = "array"
items = "integer"
default = [1]
[config.on]
type = "boolean"
default = true
[config.extra]
type = "object"
default = {}
[config.token]
type = "string"
default = "t0"
secret = true
max-length = 4
"""

#: each refusal: the pair given to ``plugbay config``, and what its error must say
REFUSALS = [
    (
        "nick=1bad",
        "config key 'nick' is invalid: \"1bad\" is not lower-case letters only",
        "set 'nick' to a value it allows, such as \"bob\" (its default)",
    ),
    (
        "code=12x",  # a search would find "x": the whole value must match
        '"12x" is not text that the regular expression [a-z]+ matches in full',
        'the key\'s description: "Two or more letters."',
    ),
    ("mode=medium", '"medium" is not one of "fast", "slow"', 'such as "fast" (its default)'),
    ("count=0", "0 is not a whole number from 1 to 10", "set 'count' to a value it allows"),
    ("count=abc", '"abc" is not a whole number from 1 to 10', "such as 2 (its default)"),
    ("ratio=2", "2 is not a number from 0 to 1", "such as 0.5 (its default)"),
    ("name=abcdefg", '"abcdefg" (7 characters) is not text of 2 to 5 characters', "set 'name'"),
    ("tags=[]", "[] (0 items) is not a list of strings with 1 to 3 items", 'such as ["a"]'),
    (
        'tags=["a","b","c","d"]',
        '["a", "b", "c", "d"] (4 items) is not a list of strings with 1 to 3 items',
        "set 'tags'",
    ),
    (
        'ports=[1,"x"]',
        '[1, "x"] is not a list of whole numbers: item 2, "x", is not a whole number',
        "such as [1] (its default)",
    ),
    ("on=maybe", '"maybe" is not true or false', "such as true (its default)"),
    ("extra=5", "5 is not a table of keys and values", "such as {} (its default)"),
    (
        "colour=red",
        "unknown config key 'colour': acme.knobs declares no such key",
        "remove 'colour', or name one of this plugin's config keys: code, count,",
    ),
    ("nikc=joe", "unknown config key 'nikc'", "did you mean 'nick'?"),
]


def _said(result: object) -> str:
    return " ".join(str(getattr(result, "stderr", "")).split())


def test_every_refusal_through_the_cli_says_the_key_the_value_and_what_is_allowed(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.knobs", extra=SCHEMA)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)):
        for pair, message, hint in REFUSALS:
            refused = plugbay("config", "acme.knobs", pair, cwd=tmp_path)
            said = _said(refused)
            assert refused.returncode == 1, (pair, refused.stdout)
            assert message in said, (pair, said)
            assert hint in said, (pair, said)
            assert f"(at run-time config: {pair.partition('=')[0]})" in said, said
            assert "Expected `" not in said and "regex" not in said, said  # msgspec's words
        nick = _said(plugbay("config", "acme.knobs", "nick=1bad", cwd=tmp_path))
        assert "^[a-z]+$" not in nick  # the pattern-hint says it, not the regular expression
        secret = _said(plugbay("config", "acme.knobs", "token=hunter22", cwd=tmp_path))
        assert "config key 'token' is invalid: the value given (not shown: 'token' is " in secret
        assert "hunter22" not in secret and "t0" not in secret
        view = json.loads(plugbay("config", "acme.knobs", "--json", cwd=tmp_path).stdout)
        assert view["runtime"] == {}  # every refusal changed nothing
        assert view["schema"]["tags"]["min-length"] == 1
        assert view["schema"]["nick"]["pattern-hint"] == "lower-case letters only"


@pytest.mark.parametrize(
    ("value", "pattern"),
    [("bob\n", "^[a-z]+$"), ("12x", "[a-z]+"), ("ab\nc", "[a-z]+$")],
)
def test_a_pattern_must_match_the_whole_value_at_the_api(
    plugins: PluginFactory, tmp_path: Path, value: str, pattern: str
) -> None:
    extra = f'[config.nick]\ntype = "string"\ndefault = "bob"\npattern = {json.dumps(pattern)}\n'
    plugins("acme.nick", extra=extra)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)) as host:
        url = f"{host.url}/api/v1/plugins/acme.nick/config"
        put = httpx.put(url, json={"values": {"nick": value}}, headers=host.auth, timeout=30)
        assert put.status_code == 422, put.text
        error = put.json()["error"]
        assert error["message"] == (
            f"config key 'nick' is invalid: {json.dumps(value)} is not text that the "
            f"regular expression {pattern} matches in full"
        )
        assert error["where"] == "run-time config: nick"  # the dashboard marks this field
        assert httpx.get(url, headers=host.auth, timeout=30).json()["config"] == {"nick": "bob"}
        ok = httpx.put(url, json={"values": {"nick": "joe"}}, headers=host.auth, timeout=30)
        assert ok.status_code == 200 and ok.json()["config"] == {"nick": "joe"}


def test_a_bad_value_in_the_host_config_file_is_said_in_words_at_start(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.knobs", extra=SCHEMA)
    plugins("acme.other", extra=SCHEMA)
    (tmp_path / "plugbay.toml").write_text(
        '[plugins."acme.knobs"]\nnick = "bob\\n"\n[plugins."acme.other"]\ntags = []\n'
    )
    ran = plugbay(
        "run", "--once", "--no-http", "--no-metrics", "--plugins", str(plugins.root),
        cwd=tmp_path,
    )  # fmt: skip
    said = " ".join((ran.stdout + ran.stderr).split())
    assert ran.returncode == 1, said
    assert (
        "config key 'nick' is invalid: \"bob\\n\" is not lower-case letters only "
        "(at plugbay.toml:2). set 'nick' to a value it allows, such as \"bob\"" in said
    ), said
    assert (
        "config key 'tags' is invalid: [] (0 items) is not a list of strings with 1 to 3 "
        "items (at plugbay.toml:4)" in said
    ), said


def test_validate_takes_a_pattern_hint_and_refuses_a_default_the_pattern_only_searches(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    hinted = plugins(
        "acme.hinted",
        extra='[config.station]\ntype = "string"\ndefault = "EGLL"\npattern = "^[A-Z]{4}$"\n'
        'pattern-hint = "an ICAO code: four capital letters"\n',
    )
    assert plugbay("validate", str(hinted), cwd=tmp_path).returncode == 0
    loose = plugins(
        "acme.loose",
        extra='[config.station]\ntype = "string"\ndefault = "EGLL\\n"\npattern = "^[A-Z]{4}$"\n',
    )
    checked = plugbay("validate", str(loose), cwd=tmp_path)
    said = " ".join((checked.stdout + checked.stderr).split())
    assert checked.returncode == 1, said
    assert "a default in [config] does not satisfy its own schema" in said
    assert '"EGLL\\n" is not text that the regular expression ^[A-Z]{4}$ matches in full' in said
