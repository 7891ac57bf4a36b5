"""Live configuration: a running plugin takes new config through its on_config_change hook
(no swap: its worker, its memory stay), else by a swap with state handover; a bad value
is refused naming the key and nothing changes; every change is in the history."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay.api.errors import ConfigError, PlugbayError
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests._running import plugbay_run
from tests.conftest import PluginFactory

SCHEMA = """
[config.greeting]
type = "string"
default = "Hello"
max-length = 20
[config.repeat]
type = "integer"
default = 1
minimum = 1
maximum = 5
[config.api-key]
type = "string"
default = "k0"
secret = true
"""

HOOKED = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.seen = []
        self.calls = 0

    def on_config_change(self, old, new):
        if new["greeting"] == "Crash":
            raise ValueError("cannot greet like that")
        self.seen.append([old["greeting"], new["greeting"]])

    @command
    def greet(self, name: str) -> dict:
        self.calls += 1
        text = " ".join([self.context.config["greeting"]] * self.context.config["repeat"])
        return {"text": f"{text}, {name}", "calls": self.calls, "seen": self.seen,
                "pid": os.getpid()}
"""

SWAPPED = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.calls = 0

    def export_state(self) -> dict:
        return {"calls": self.calls}

    def import_state(self, state: dict) -> None:
        self.calls = state["calls"]

    @command
    def greet(self, name: str) -> dict:
        self.calls += 1
        return {"text": f"{self.context.config['greeting']}, {name}", "calls": self.calls,
                "pid": os.getpid()}
"""


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_a_plugin_with_the_hook_takes_new_config_without_a_swap(
    plugins: PluginFactory, make_host: Callable[..., Host], isolation: str
) -> None:
    plugins("acme.greeter", HOOKED, extra=f'isolation = "{isolation}"\n' + SCHEMA)
    inline = ["*"] if isolation == "inline" else []
    async with make_host(inline=inline) as host:
        first = await host.call("acme.greeter", "greet", name="Ada")
        assert first["text"] == "Hello, Ada"
        await host.set_config("acme.greeter", {"greeting": "Hi", "repeat": 2, "api-key": "s3"})
        after = await host.call("acme.greeter", "greet", name="Ada")
        assert after["text"] == "Hi Hi, Ada"
        # the same instance in the same process: its memory is intact, no swap happened
        assert (after["calls"], after["seen"], after["pid"]) == (2, [["Hello", "Hi"]], first["pid"])
        assert host.plugin("acme.greeter").config["repeat"] == 2
        [event] = [e for e in host.history("acme.greeter") if e.action == "config"]
        assert event.details["applied"] == "on_config_change"
        assert event.details["values"] == {"greeting": "Hi", "repeat": 2, "api-key": "***"}

        # a hook that raises: the old config stays, in the plugin and in the state
        with pytest.raises(PlugbayError, match="cannot greet like that"):
            await host.set_config("acme.greeter", {"greeting": "Crash"})
        assert (await host.call("acme.greeter", "greet", name="Bo"))["text"] == "Hi Hi, Bo"
        assert host.runtime_config("acme.greeter")["greeting"] == "Hi"


async def test_a_plugin_without_the_hook_is_swapped_with_its_state(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.greeter", SWAPPED, extra='isolation = "process"\n' + SCHEMA)
    async with make_host(inline=[]) as host:
        before = await host.call("acme.greeter", "greet", name="Ada")
        await host.set_config("acme.greeter", {"greeting": "Salut"})
        after = await host.call("acme.greeter", "greet", name="Ada")
        assert after["text"] == "Salut, Ada"
        assert after["calls"] == before["calls"] + 1  # handed over across the swap
        assert after["pid"] != before["pid"]  # a new worker
        [event] = [e for e in host.history("acme.greeter") if e.action == "config"]
        assert event.details["applied"] == "swap with state handover"


async def test_invalid_values_are_refused_naming_the_key_and_nothing_changes(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.greeter", HOOKED, extra=SCHEMA)
    async with make_host() as host:
        for values, key in (
            ({"repeat": 9}, "repeat"),
            ({"greeting": "x" * 30}, "greeting"),
            ({"colour": "red"}, "colour"),
        ):
            with pytest.raises(ConfigError) as caught:
                await host.set_config("acme.greeter", values)
            assert caught.value.where == f"run-time config: {key}"
        assert host.runtime_config("acme.greeter") == {}
        assert (await host.call("acme.greeter", "greet", name="A"))["text"] == "Hello, A"
        assert not [e for e in host.history("acme.greeter") if e.action == "config"]


def test_the_config_command_changes_a_running_plugin(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.greeter", HOOKED, extra=SCHEMA)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)):
        shown = plugbay("config", "acme.greeter", "--json", cwd=tmp_path)
        assert json.loads(shown.stdout)["config"]["greeting"] == "Hello"
        done = plugbay("config", "acme.greeter", "greeting=Hey", "repeat=3", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "config changed" in done.stdout
        called = plugbay("call", "acme.greeter", "greet", "name=Cy", "--json", cwd=tmp_path)
        assert json.loads(called.stdout)["result"]["text"] == "Hey Hey Hey, Cy"
        bad = plugbay("config", "acme.greeter", "repeat=7", cwd=tmp_path)
        assert bad.returncode == 1
        assert "config key 'repeat' is invalid" in " ".join(bad.stderr.split())
        # keys not named keep their run-time values
        plugbay("config", "acme.greeter", "repeat=1", cwd=tmp_path)
        view = json.loads(plugbay("config", "acme.greeter", "--json", cwd=tmp_path).stdout)
        assert view["runtime"] == {"greeting": "Hey", "repeat": 1}


PICKY = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        if context.config["greeting"] == "Hello":
            raise RuntimeError("too plain a greeting: set another one")

    @command
    def greet(self, name: str) -> str:
        return f"{self.context.config['greeting']}, {name}"
"""


async def test_a_failed_plugins_new_config_says_what_starts_it_with_it(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """The values are kept for its next start, and the answer says so, naming the command
    and the request that start it; ``pending`` is null once it runs with them."""
    import httpx

    from tests._served import api_served

    plugins("acme.picky", PICKY, extra=SCHEMA)
    async with make_host() as host, api_served(host) as served:
        assert str(host.plugin("acme.picky").state) == "failed"
        url = f"{served.url}/api/v1/plugins/acme.picky"
        auth = {"Authorization": f"Bearer {served.token}"}
        async with httpx.AsyncClient(headers=auth) as http:
            put = await http.put(f"{url}/config", json={"values": {"greeting": "Hey"}})
            assert put.status_code == 200, put.text
            view = put.json()
            assert view["runtime"] == {"greeting": "Hey"}
            assert view["pending"].startswith("acme.picky is failed: it runs with this config")
            assert "'plugbay enable acme.picky'" in view["pending"]
            assert "POST /api/v1/plugins/acme.picky/enable" in view["pending"]
            assert str(host.plugin("acme.picky").state) == "failed"  # nothing started it
            assert (await http.post(f"{url}/enable")).status_code == 200
            assert await host.call("acme.picky", "greet", name="Ada") == "Hey, Ada"
            assert (await http.get(f"{url}/config")).json()["pending"] is None
            # a key left out of the values goes back to its default (the plugin refuses it)
            reset = await http.put(f"{url}/config", json={"values": {}})
            assert reset.status_code == 409, reset.text
            assert "too plain a greeting" in reset.json()["error"]["message"]
            assert host.runtime_config("acme.picky") == {"greeting": "Hey"}  # the old values


def test_the_config_command_unsets_a_key_and_says_what_starts_a_failed_plugin(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins("acme.greeter", HOOKED, extra=SCHEMA)
    plugins("acme.picky", PICKY, extra=SCHEMA)
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)):
        plugbay("config", "acme.greeter", "greeting=Hey", "repeat=3", cwd=tmp_path)
        done = plugbay("config", "acme.greeter", "--unset", "greeting", "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        view = json.loads(done.stdout)
        assert view["runtime"] == {"repeat": 3}  # the other key kept its run-time value
        assert (view["config"]["greeting"], view["pending"]) == ("Hello", None)
        called = plugbay("call", "acme.greeter", "greet", "name=Cy", "--json", cwd=tmp_path)
        assert json.loads(called.stdout)["result"]["text"] == "Hello Hello Hello, Cy"
        unknown = plugbay("config", "acme.greeter", "--unset", "colour", cwd=tmp_path)
        assert unknown.returncode == 1
        assert "cannot unset 'colour'" in " ".join(unknown.stderr.split())

        changed = plugbay("config", "acme.picky", "greeting=Hey", cwd=tmp_path)
        assert changed.returncode == 0, changed.stderr
        said = " ".join(changed.stdout.split())
        assert "acme.picky: config changed" in said
        assert "not in effect yet: acme.picky is failed" in said
        assert "'plugbay enable acme.picky'" in said
        assert plugbay("enable", "acme.picky", cwd=tmp_path).returncode == 0
        called = plugbay("call", "acme.picky", "greet", "name=Cy", "--json", cwd=tmp_path)
        assert json.loads(called.stdout)["result"] == "Hey, Cy"
