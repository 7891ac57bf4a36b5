"""An operator's audit of a running host's words: each names what the operator acts on,
in the words of the surface they typed into (the CLI, the HTTP API, Python)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from plugbay import DependentsError
from plugbay.web.client import HostClient
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow


def test_a_disable_refused_for_its_dependents_says_the_cascade_as_each_surface_asks(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    # the CLI printed "(--cascade / cascade=True)": Python's words on a command line
    plugins("acme.base")
    plugins("acme.top", extra='[dependencies]\n"acme.base" = "*"\n')
    with plugbay_run(tmp_path) as host:
        refused = plugbay("disable", "acme.base", cwd=tmp_path)
        assert refused.returncode == 1
        said = " ".join(refused.stderr.split())
        assert "cannot be disabled: acme.top depends on it" in said
        assert said.endswith("disable those first, or ask for a cascade (--cascade)"), said
        answer = httpx.post(
            f"{host.url}/api/v1/plugins/acme.base/disable", headers=host.auth, json={}
        )
        assert answer.status_code == 409
        assert answer.json()["error"]["hint"] == (
            'disable those first, or ask for a cascade ("cascade": true in the request body)'
        )
        with (
            HostClient(host.url, host.token) as client,
            pytest.raises(DependentsError) as from_python,
        ):
            client.disable("acme.base")
        assert str(from_python.value).endswith("ask for a cascade (cascade=True)")
        listed = json.loads(plugbay("list", "--json", cwd=tmp_path).stdout)
        assert {p["id"]: p["state"] for p in listed}["acme.base"] == "active"  # nothing changed


def test_a_host_config_key_a_plugin_refuses_is_named_by_file_and_line_and_its_health_labelled(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    # the refusal said "(at host config: nosuch)": no file, no line; and 'plugbay top'
    # said "health failing" where 'plugbay health' ended "host: degraded", for one host
    plugins("acme.calm")
    plugins("acme.cfg", extra='[config.width]\ntype = "integer"\ndefault = 72\n')
    config = tmp_path / "host.toml"
    config.write_text('# the host\n\n[plugins."acme.cfg"]\nwidth = 80\nnosuch = 1\n')
    with plugbay_run(tmp_path, "--config", str(config)) as host:
        said = " ".join(host.output.split())
        assert (
            "unknown config key 'nosuch': acme.cfg declares no such key "
            f"(at {config}:5). remove 'nosuch'"
        ) in said, said
        info = " ".join(plugbay("info", "acme.cfg", cwd=tmp_path).stdout.split())
        assert f"(at {config}:5)" in info, info
        top = plugbay("top", "--once", cwd=tmp_path)
        assert "plugbay — worst plugin health failing," in top.stdout, top.stdout
        health = plugbay("health", cwd=tmp_path)
        assert health.returncode == 1  # the worst plugin health is failing
        lines = [line for line in health.stdout.splitlines() if line.strip()]
        assert lines[0] == "worst plugin health: failing", lines
        assert lines[-1] == "host readiness: degraded, 1 of 2 wanted plugins active", lines
