"""What a newcomer met on the command line beside a real host: a bound only the API
checked (exit 1 in the API's words, not a usage error naming the option), three
wordings of an unknown plugin id, an event kind no event has followed in silence,
and "(1 packages)"."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from plugbay.cli import app
from plugbay.cli._counted import counted
from tests._cli import cli_env, plugbay
from tests._running import Running, plugbay_run
from tests.conftest import PluginFactory

CALC = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""

#: each command line option whose value goes to a query parameter the API bounds:
#: (command, option, API path, query parameter)
FED_TO_THE_API = [
    ("profile", "--seconds", "/api/v1/plugins/{plugin_id}/profile", "seconds"),
    ("profile", "--interval", "/api/v1/plugins/{plugin_id}/profile", "interval"),
    ("history", "--limit", "/api/v1/history", "limit"),
    ("events", "--count", "/api/v1/events", "max_events"),
]
#: a value past each bound, and the option the usage error must name
PAST_THE_BOUNDS = [
    (["profile", "acme.calc", "--seconds", "-1"], "--seconds"),
    (["profile", "acme.calc", "--seconds", "0"], "--seconds"),
    (["profile", "acme.calc", "--seconds", "301"], "--seconds"),
    (["profile", "acme.calc", "--interval", "0"], "--interval"),
    (["profile", "acme.calc", "--interval", "5"], "--interval"),
    (["history", "-n", "10001"], "--limit"),
    (["events", "-n", "100001"], "--count"),
]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    cwd = tmp_path_factory.mktemp("loose-ends")
    PluginFactory(cwd / "plugins")("acme.calc", CALC)
    with plugbay_run(cwd) as running:
        yield running


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stderr + result.stdout).split())


def test_a_bound_the_api_checks_is_a_usage_error_naming_the_option(host: Running) -> None:
    cwd = host.state.parent
    for argv, option in PAST_THE_BOUNDS:
        result = plugbay(*argv, cwd=cwd)
        said = _said(result)
        assert result.returncode == 2, (argv, said)
        assert option in said, (argv, said)
        assert "does not match the API" not in said, (argv, said)


def _query_bounds(schema: dict[str, Any], path: str, name: str) -> tuple[Any, Any, bool]:
    """(lowest, highest, lowest excluded) of one query parameter in the OpenAPI document."""
    (operation,) = schema["paths"][path].values()
    (param,) = [p for p in operation["parameters"] if p["name"] == name]
    s = param["schema"]
    if "exclusiveMinimum" in s:
        return s["exclusiveMinimum"], s.get("maximum"), True
    return s.get("minimum"), s.get("maximum"), False


def test_every_bound_the_api_checks_is_the_command_lines_too(host: Running) -> None:
    """A bound changed in the API and not in the CLI brings the API's words back."""
    schema = httpx.get(f"{host.url}/openapi.json", headers=host.auth, timeout=10).json()
    commands: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for command, option, path, name in FED_TO_THE_API:
        (param,) = [p for p in commands[command].params if option in p.opts]
        low, high, excluded = _query_bounds(schema, path, name)
        bounds = (param.min, param.max)
        assert bounds[1] == high, (command, option, bounds, high)
        if excluded:  # above 0: typer has no open bound, the option's callback says it
            assert param.callback is not None and bounds[0] is None, (command, option)
        else:
            assert bounds[0] == low, (command, option, bounds, low)


@pytest.mark.parametrize(
    "argv",
    [
        ["call", "acme.clac", "add", "a=1"],
        ["load", "acme.clac"],
        ["info", "acme.clac"],
        ["logs", "acme.clac"],
        ["alerts", "acme.clac"],
        ["history", "acme.clac"],
    ],
)
def test_an_unknown_id_reads_the_same_in_every_command(host: Running, argv: list[str]) -> None:
    result = plugbay(*argv, cwd=host.state.parent)
    said = _said(result)
    assert result.returncode == 1, said
    assert "no plugin 'acme.clac' is known to this host" in said, said
    assert "did you mean 'acme.calc'?" in said, said


def _follow_until_open(cwd: Path, *kinds: str) -> list[str]:
    """The lines ``plugbay events --kind …`` writes on stderr up to "following events"."""
    argv = [sys.executable, "-m", "plugbay.cli", "events"]
    for kind in kinds:
        argv += ["--kind", kind]
    follow = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    )
    lines: list[str] = []
    try:
        assert follow.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = follow.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "following events" in line:
                break
    finally:
        follow.kill()
        follow.communicate()
    assert any("following events" in line for line in lines), lines
    return lines


def test_an_event_kind_no_system_event_has_is_warned_of_once(host: Running) -> None:
    lines = _follow_until_open(host.state.parent, "nonsense", "plugin.*", "nonsens*")
    said = " ".join("".join(lines).split())
    assert said.count("warning:") == 1, said
    assert "no system event is of kind nonsense, nonsens*" in said, said
    assert "plugin.*" in said.split("following events")[0], said  # the kinds there are
    plain = _follow_until_open(host.state.parent, "plugin.loaded", "security.*", "*")
    assert not any("warning" in line for line in plain), plain


def test_a_count_of_one_is_said_in_the_singular(tmp_path: Path) -> None:
    ran = plugbay("run", "--once", "--plugins", "none", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr  # its start kept one backup of the state
    checked = plugbay("state", "check", cwd=tmp_path)
    assert "the state database is sound (1 backup kept)" in _said(checked), _said(checked)
    assert [counted(n, "package") for n in (0, 1, 2)] == ["0 packages", "1 package", "2 packages"]


def test_an_sbom_of_one_package_says_one_package(tmp_path: Path) -> None:
    """`plugbay info ID --sbom FILE` said "(1 packages)"."""
    PluginFactory(tmp_path / "plugins")(
        "acme.dep",
        extra='isolation = "inline"\npython-dependencies = ["msgspec"]\n',
        dirname="core/acme.dep-1.0.0",  # trusted: inline, on the host's own packages
    )
    with plugbay_run(tmp_path):  # the host reads the packages it runs the plugin on
        wrote = plugbay("info", "acme.dep", "--sbom", "bom.json", cwd=tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    assert "wrote a CycloneDX SBOM of acme.dep (1 package) to bom.json" in _said(wrote)
