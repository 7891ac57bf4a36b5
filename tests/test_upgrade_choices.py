"""Which version ``plugbay upgrade ID`` takes when none is named, what a host keeps of a
config key only another installed version declares, and which version ``plugbay list``
says the next start serves."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import PlugbayError
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests.conftest import PluginFactory
from tests.test_cli_json import documented, same_shape

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def which(self) -> str:
        return "{pid} {version}"
"""


def _plugin(directory: Path, pid: str, version: str, extra: str = "") -> Path:
    """Plugin ``pid`` at ``version`` whose ``which`` names its version."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.toml").write_text(
        f'id = "{pid}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n'
        + textwrap.dedent(extra)
    )
    (directory / "main.py").write_text(textwrap.dedent(CODE.format(pid=pid, version=version)))
    return directory


NEEDS_BASE_1 = '[dependencies]\n"acme.base" = "^1"\n'


def test_an_upgrade_with_no_version_takes_the_newest_its_dependents_accept(
    tmp_path: Path,
) -> None:
    _plugin(tmp_path / "plugins" / "base", "acme.base", "1.0.0")
    _plugin(tmp_path / "plugins" / "app", "acme.app", "1.0.0", NEEDS_BASE_1)
    served = plugbay("call", "acme.base", "which", cwd=tmp_path)  # 1.0.0 serves, and is kept
    assert served.stdout.strip() == "acme.base 1.0.0", served.stderr
    for version in ("1.1.0", "2.0.0"):
        source = _plugin(tmp_path / "v" / version, "acme.base", version)
        installed = plugbay("install", str(source), cwd=tmp_path)
        assert installed.returncode == 0, installed.stderr
    dry = plugbay("upgrade", "acme.base", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "acme.base: would move 1.0.0 → 1.1.0" in dry.stdout
    # the passed-over major is named, with why and what moves to it
    note = " ".join(dry.stdout.split())
    assert "2.0.0 is installed too" in note
    assert "'acme.app' 1.0.0 requires 'acme.base' ^1" in note
    assert "'plugbay upgrade acme.base --with-dependents'" in note
    up = plugbay("upgrade", "acme.base", "--json", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    answer = json.loads(up.stdout)
    same_shape(answer, documented()["upgrade"], "upgrade")
    assert answer["changes"] == {"acme.base": ["1.0.0", "1.1.0"]}
    assert answer["passed_over"]["version"] == "2.0.0"
    assert set(answer["passed_over"]["dependents"]) == {"acme.app"}
    called = plugbay("call", "acme.base", "which", cwd=tmp_path)
    assert called.stdout.strip() == "acme.base 1.1.0"


async def test_with_only_an_incompatible_newer_version_the_refusal_names_it(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    _plugin(plugins.root / "base", "acme.base", "1.0.0")
    _plugin(plugins.root / "app", "acme.app", "1.0.0", NEEDS_BASE_1)
    async with make_host() as host:
        host.install(_plugin(tmp_path / "v2", "acme.base", "2.0.0"))
        with pytest.raises(PlugbayError) as refused:
            await host.upgrade("acme.base")
        text = str(refused.value)
        assert "2.0.0 would break its dependents: 'acme.app' 1.0.0 requires 'acme.base' ^1" in text
        assert "no newer version its dependents accept is installed" in text
        assert "'plugbay upgrade acme.base --with-dependents'" in text
        assert host.plugin("acme.base").version == "1.0.0"
        # a compatible one installed since is taken, the major noted as passed over
        host.install(_plugin(tmp_path / "v11", "acme.base", "1.1.0"))
        plan = await host.upgrade("acme.base")
        assert plan.to_dict() == {"acme.base": {"from": "1.0.0", "to": "1.1.0"}}
        assert plan.passed_over is not None and plan.passed_over["version"] == "2.0.0"
        assert await host.call("acme.base", "which") == "acme.base 1.1.0"


FAILS_TO_START = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        raise RuntimeError("no database")

    @command
    def which(self) -> str:
        return "never"
"""


async def test_a_failed_start_leaves_no_copy_in_the_store_while_the_host_runs(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    plugins("acme.bad", FAILS_TO_START)
    async with make_host() as host:
        assert str(host.plugin("acme.bad").state) == "failed"
        assert host.store is not None
        host.store.settle("acme.bad")
        stored = tmp_path / "state" / "store" / "acme.bad"
        assert not stored.exists() or list(stored.iterdir()) == []
        # a rollback's "kept:" names no half-made copy
        with pytest.raises(PlugbayError) as refused:
            host.store.manifest("acme.bad", "1.0.0")
        assert "(kept: none)" in refused.value.message


def test_list_with_no_host_shows_the_version_the_next_start_serves(tmp_path: Path) -> None:
    _plugin(tmp_path / "plugins" / "base", "acme.base", "1.0.0")
    steps = [
        ("call", "acme.base", "which"),  # 1.0.0 serves
        ("install", str(_plugin(tmp_path / "v11", "acme.base", "1.1.0"))),
        ("upgrade", "acme.base"),
        ("rollback", "acme.base"),  # the operator chose 1.0.0: the next start serves it
    ]
    for step in steps:
        done = plugbay(*step, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    listed = plugbay("list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["id"]: row["version"] for row in json.loads(listed.stdout)}
    assert rows == {"acme.base": "1.0.0"}
    info = plugbay("info", "acme.base", "--json", cwd=tmp_path)
    assert json.loads(info.stdout)["version"] == "1.0.0"
    started = plugbay("call", "acme.base", "which", cwd=tmp_path)
    assert started.stdout.strip() == "acme.base 1.0.0"


SHOWS_CONFIG = """
from typing import Any
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def config(self) -> dict[str, Any]:
        return dict(self.context.config)
"""
NEEDS_URL = '[config.api-url]\ntype = "string"\nrequired = true\n'


def _configured(directory: Path, version: str, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.toml").write_text(
        f'id = "acme.svc"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n{extra}'
    )
    (directory / "main.py").write_text(textwrap.dedent(SHOWS_CONFIG))
    return directory


async def test_a_key_only_the_new_version_declares_is_kept_aside_until_it_serves(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    _configured(plugins.root / "svc", "1.0.0")
    async with make_host() as host:
        host.install(_configured(tmp_path / "v2", "2.0.0", NEEDS_URL))
        with pytest.raises(PlugbayError) as missing:
            await host.upgrade("acme.svc", "2.0.0")
        assert "config key 'api-url' is required" in str(missing.value)
        # where to set it: the file, the command, and that it waits for 2.0.0 meanwhile
        said = " ".join(str(missing.value).split())
        assert '[plugins."acme.svc"] api-url = … in plugbay.toml' in said
        assert "'plugbay config acme.svc api-url=VALUE'" in said
        assert "kept aside until a version declaring it serves" in said
        # set while 1.0.0 serves: kept, not passed to 1.0.0, which does not declare it
        await host.set_config("acme.svc", {"api-url": "https://api.example"})
        assert await host.call("acme.svc", "config") == {}
        with pytest.raises(PlugbayError) as unknown:  # no installed version declares it
            await host.set_config("acme.svc", {"api-url": "https://x", "nope": 1})
        assert "config was given (nope)" in str(unknown.value)
        await host.upgrade("acme.svc", "2.0.0")
        assert await host.call("acme.svc", "config") == {"api-url": "https://api.example"}


def test_plugbay_config_keeps_and_shows_a_key_for_the_version_that_declares_it(
    tmp_path: Path,
) -> None:
    _configured(tmp_path / "plugins" / "svc", "1.0.0")
    served = plugbay("call", "acme.svc", "config", cwd=tmp_path)
    assert served.returncode == 0, served.stderr
    installed = plugbay(
        "install", str(_configured(tmp_path / "v2", "2.0.0", NEEDS_URL)), cwd=tmp_path
    )
    assert installed.returncode == 0, installed.stderr
    changed = plugbay("config", "acme.svc", "api-url=https://api.example", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    said = " ".join(changed.stdout.split())
    assert "acme.svc: the serving version declares none of api-url" in said
    assert "so the config it runs with is unchanged: it was not reloaded" in said
    again = plugbay("config", "acme.svc", "api-url=https://api.example", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["unchanged"] is True, again.stderr
    shown = plugbay("config", "acme.svc", "--json", cwd=tmp_path)
    kept = json.loads(shown.stdout)["kept"]
    assert kept == {
        "api-url": {"value": "https://api.example", "version": "2.0.0", "type": "string"}
    }
    text = " ".join(plugbay("config", "acme.svc", cwd=tmp_path).stdout.split())
    assert 'api-url = "https://api.example": kept for version 2.0.0' in text
    refused = plugbay("config", "acme.svc", "nope=1", cwd=tmp_path)
    assert refused.returncode == 1 and "config was given (nope)" in refused.stderr
    # the same key in plugbay.toml does not stop 1.0.0 from starting
    (tmp_path / "plugbay.toml").write_text('[plugins."acme.svc"]\napi-url = "https://file"\n')
    still = plugbay("call", "acme.svc", "config", "--config", "plugbay.toml", cwd=tmp_path)
    assert still.returncode == 0, still.stderr
    assert json.loads(still.stdout) == {}
    up = plugbay("upgrade", "acme.svc", "2.0.0", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    now = plugbay("call", "acme.svc", "config", cwd=tmp_path)
    assert json.loads(now.stdout) == {"api-url": "https://api.example"}


COUNTS_HOOKS = """
import uuid
from typing import Any
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context) -> None:
        self.instance, self.hooked = uuid.uuid4().hex, 0

    {hook}

    @command
    def seen(self) -> dict[str, Any]:
        return {{"instance": self.instance, "hooked": self.hooked,
                 "config": dict(self.context.config)}}
"""
HOOK = "def on_config_change(self, old, new) -> None:\n        self.hooked += 1"


@pytest.mark.parametrize("hook", [HOOK, "pass"], ids=["with-hook", "without-hook"])
async def test_a_key_kept_aside_changes_nothing_the_serving_version_runs_with(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path, hook: str
) -> None:
    svc = _configured(plugins.root / "svc", "1.0.0", '[config.greeting]\ntype = "string"\n')
    (svc / "main.py").write_text(COUNTS_HOOKS.format(hook=hook))
    async with make_host() as host:
        host.install(_configured(tmp_path / "v2", "2.0.0", NEEDS_URL))
        before = await host.call("acme.svc", "seen")
        await host.set_config("acme.svc", {"api-url": "https://api.example"})
        # the same instance, its hook not run: no reload for a value it does not get
        assert await host.call("acme.svc", "seen") == before
        assert [e.action for e in host.history("acme.svc")].count("reload") == 0
        event = next(e for e in host.history("acme.svc") if e.action == "config")
        assert event.details["applied"].startswith("nothing: the config the serving version")
        # a key it declares is still applied (by its hook, else a reload)
        await host.set_config("acme.svc", {"api-url": "https://api.example", "greeting": "Hi"})
        after = await host.call("acme.svc", "seen")
        assert after["config"] == {"greeting": "Hi"}
        assert after["hooked"] == (1 if hook == HOOK else 0)
        assert (after["instance"] == before["instance"]) is (hook == HOOK)
