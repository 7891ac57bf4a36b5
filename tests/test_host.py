"""The host end to end: discovery, resolution, lifecycle, calls, state, and every bad input
the spine names, each asserting the message a user sees and that the others keep serving."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugbay import (
    CommandNotFound,
    DependentsError,
    ParameterError,
    PluginCallError,
    PluginNotFound,
    PluginStateError,
    PluginTimeout,
    ResultTypeError,
)
from plugbay.isolation.loading import NAMESPACE
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

HOST_OK = 'host = ">=0.1.0 <1.0.0"\n'


async def assert_serving(host: Host, plugin_id: str = "acme.ok") -> None:
    assert await host.call(plugin_id, "ping") == f"pong from {plugin_id} 1.0.0"


def state(host: Host, plugin_id: str) -> str:
    return str(host.plugin(plugin_id).state)


# ------------------------------------------------------------------ happy path


async def test_plugins_start_in_dependency_order_and_stop_in_reverse(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    log = tmp_path / "order.log"
    code = f"""
    from plugbay import UtilityPlugin, command

    class P(UtilityPlugin):
        async def initialize(self, context):
            open({str(log)!r}, "a").write("init " + self.id + "\\n")

        async def cleanup(self):
            open({str(log)!r}, "a").write("cleanup " + self.id + "\\n")

        @command
        def ping(self) -> str:
            return "pong"
    """
    plugins("acme.c", code, extra='[dependencies]\n"acme.b" = "^1"\n')
    plugins("acme.b", code, extra='[dependencies]\n"acme.a" = "^1"\n')
    plugins("acme.a", code)
    async with make_host() as host:
        assert [state(host, p) for p in ("acme.a", "acme.b", "acme.c")] == ["active"] * 3
    assert log.read_text().split("\n")[:-1] == [
        "init acme.a", "init acme.b", "init acme.c",
        "cleanup acme.c", "cleanup acme.b", "cleanup acme.a",
    ]  # fmt: skip


async def test_newest_version_wins_and_both_are_known(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.ok", version="1.0.0")
    plugins("acme.ok", version="1.4.0")
    async with make_host() as host:
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.4.0"
        assert host.info("acme.ok")["versions_known"] == ["1.4.0", "1.0.0"]


async def test_typed_proxy_calls_through_the_host(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins(
        "acme.calc",
        """
        from plugbay import UtilityPlugin, command

        class Calc(UtilityPlugin):
            @command
            async def add(self, a: int, b: int = 1) -> int:
                return a + b
        """,
        cls="Calc",
    )
    async with make_host() as host:
        rec = host.plugin("acme.calc")
        assert rec.handle is not None and rec.handle.instance is not None
        calc = host.get(type(rec.handle.instance))
        assert await calc.add(a=2) == 3
        assert await calc.add(5, 5) == 10
        with pytest.raises(ParameterError, match="parameter 'a' expects int, got str"):
            await calc.add(a="2")  # type: ignore[arg-type]
        metrics = host.info("acme.calc")["metrics"]["commands"]["add"]
        assert metrics["calls"] == 3
        assert metrics["errors_by_type"] == {}  # the caller's mistake, not the plugin's
        # a proxy's commands are its attributes: Python's own ways of asking work
        for proxy in (calc, host.proxy("acme.calc")):
            assert hasattr(proxy, "add") and not hasattr(proxy, "nope")
            assert getattr(proxy, "nope", None) is None
            with pytest.raises(CommandNotFound, match="no command 'nope'"):
                proxy.nope  # noqa: B018


async def test_context_has_environment_config_logger_metrics_services(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    plugins(
        "acme.ctx",
        """
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            async def initialize(self, context):
                self.ctx = context

            @command
            def describe(self) -> dict[str, str]:
                env = self.ctx.environment
                self.ctx.metrics.increment("described")
                self.ctx.logger.info("describing")
                return {
                    "host": env.host_version, "data": str(env.data_dir), "mode": env.mode,
                    "greeting": self.ctx.config["greeting"], "logger": self.ctx.logger.name,
                }
        """,
        extra='[config.greeting]\ntype = "string"\ndefault = "hi"\n',
    )
    async with make_host(config={"acme.ctx": {"greeting": "hello"}}) as host:
        out = await host.call("acme.ctx", "describe")
        assert out == {
            "host": "0.1.0",
            "data": str(tmp_path / "state" / "data" / "acme.ctx"),
            "mode": "production",
            "greeting": "hello",
            "logger": "plugbay.plugin.acme.ctx",
        }
        assert host.info("acme.ctx")["metrics"]["counters"] == {"described": 1.0}


async def test_services_provided_and_required_with_ranges(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins(
        "acme.provider",
        """
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def shout(self, text: str) -> str:
                return text.upper()
        """,
        extra='[services]\nprovides = { shouting = "1.3.0" }\n',
    )
    plugins(
        "acme.consumer",
        """
        from plugbay import UtilityPlugin, command, ServiceError

        class P(UtilityPlugin):
            async def initialize(self, context):
                self.svc = context.services.require("shouting", "^1.2")
                try:
                    context.services.require("shouting", "^2")
                except ServiceError as exc:
                    self.refusal = str(exc)

            @command
            async def go(self) -> list[str]:
                return [await self.svc.shout(text="hey"), self.refusal]
        """,
        extra='[services]\nrequires = { shouting = "^1.2" }\n',
    )
    async with make_host() as host:
        shout, refusal = await host.call("acme.consumer", "go")
        assert shout == "HEY"
        assert refusal == (
            "plugin 'acme.consumer': service 'shouting' is provided by 'acme.provider' at 1.3.0, "
            "which is not in the range ^2. install a version of 'acme.provider' that provides "
            "'shouting' ^2, or relax the range"
        )


async def test_restart_restores_disabled_plugins_and_history(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.ok")
    plugins("acme.off")
    async with make_host() as host:
        await host.disable("acme.off", "noisy")
        assert state(host, "acme.off") == "disabled"
    async with make_host() as host:
        assert state(host, "acme.off") == "disabled"
        assert host.plugin("acme.off").reason == "noisy"
        await assert_serving(host)
        await host.enable("acme.off")
        assert await host.call("acme.off", "ping") == "pong from acme.off 1.0.0"
        assert host.state is not None
        actions = [(e.action, e.result) for e in host.state.history("acme.off")]
        # newest first; a disable is kept before it is applied, so it precedes its unload
        assert actions == [
            ("load", "ok"), ("enable", "ok"), ("unload", "ok"), ("disable", "ok"), ("load", "ok")
        ]  # fmt: skip
    async with make_host() as host:
        assert state(host, "acme.off") == "active"


async def test_disabling_again_without_a_reason_keeps_the_reason(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """A second disable with no reason replaced 'ticket 42' by 'disabled by the operator'."""
    plugins("acme.off")
    async with make_host() as host:
        await host.disable("acme.off", "ticket 42")
        await host.disable("acme.off")
        assert host.plugin("acme.off").reason == "ticket 42"
        assert host.state is not None and host.state.disabled() == {"acme.off": "ticket 42"}
        await host.disable("acme.off", "ticket 43")  # a new reason still replaces it
        assert host.plugin("acme.off").reason == "ticket 43"
    async with make_host() as host:
        await host.disable("acme.off")  # disabled since the last start
        assert host.plugin("acme.off").reason == "ticket 43"


# ------------------------------------------------------------------ unload


async def test_unloading_a_dependency_is_refused_with_the_dependents(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.base")
    plugins("acme.mid", extra='[dependencies]\n"acme.base" = "*"\n')
    plugins("acme.top", extra='[dependencies]\n"acme.mid" = "*"\n')
    plugins("acme.ok")
    async with make_host() as host:
        with pytest.raises(DependentsError) as err:
            await host.unload("acme.base")
        assert str(err.value) == (
            "plugin 'acme.base': cannot be unloaded: acme.mid, acme.top depend on it. "
            "unload those first, or ask for a cascade (cascade=True)"
        )
        assert state(host, "acme.base") == "active"
        assert await host.unload("acme.base", cascade=True) == ["acme.top", "acme.mid", "acme.base"]
        assert {state(host, p) for p in ("acme.base", "acme.mid", "acme.top")} == {"stopped"}
        await assert_serving(host)
        with pytest.raises(
            PluginStateError, match=r"'acme\.top': is stopped \(unloaded\), so it takes no calls"
        ):
            await host.call("acme.top", "ping")


async def test_an_optional_dependency_can_be_disabled_and_its_dependents_keep_serving(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """Only what cannot run without a plugin holds it: a plugin listing it under
    [optional-dependencies] keeps serving; calling the stopped plugin fails cleanly."""
    plugins("acme.base")
    plugins("acme.opt", extra='[optional-dependencies]\n"acme.base" = "^1"\n')
    plugins("acme.mid", extra='[optional-dependencies]\n"acme.opt" = "^1"\n')
    async with make_host() as host:
        assert state(host, "acme.opt") == "active" and "acme.base" in host.plugin("acme.opt").needs
        assert await host.disable("acme.base") == ["acme.base"]
        assert state(host, "acme.base") == "disabled"
        assert {state(host, p) for p in ("acme.opt", "acme.mid")} == {"active"}
        assert await host.call("acme.opt", "ping") == "pong from acme.opt 1.0.0"
        with pytest.raises(
            PluginStateError, match=r"'acme\.base': is disabled, so it takes no calls"
        ):
            await host.call("acme.base", "ping")
        assert await host.unload("acme.opt") == ["acme.opt"]  # acme.mid only wants it
        assert await host.call("acme.mid", "ping") == "pong from acme.mid 1.0.0"
        await host.enable("acme.base")
        assert await host.call("acme.base", "ping") == "pong from acme.base 1.0.0"


async def test_unload_removes_the_plugins_modules(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    directory = plugins("acme.mods", "from .helper import P\n")
    (directory / "helper.py").write_text(
        "from plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n"
        "    @command\n    def ping(self) -> str:\n        return 'pong'\n"
    )
    async with make_host() as host:
        loaded = [m for m in sys.modules if m.startswith(NAMESPACE) and "acme_mods" in m]
        assert len(loaded) == 3  # the package, main, helper
        await host.unload("acme.mods")
        assert not [m for m in sys.modules if m.startswith(NAMESPACE) and "acme_mods" in m]


# ------------------------------------------------------------------ bad input


async def test_entry_module_missing(plugins: PluginFactory, make_host: Callable[..., Host]) -> None:
    d = plugins("acme.ghost")
    (d / "main.py").unlink()
    plugins("acme.ok")
    async with make_host() as host:
        rec = host.plugin("acme.ghost")
        assert str(rec.state) == "failed"
        assert rec.reason == (
            f"plugin 'acme.ghost': entry module 'main' does not exist (at {d}). "
            "create main.py there, or fix entry in the manifest"
        )
        await assert_serving(host)


async def test_entry_that_fails_to_import(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    d = plugins("acme.boom", "x = 1\nraise RuntimeError('no config file')\n")
    plugins("acme.broken", "def f(:\n")
    plugins("acme.needs", "import not_a_real_module_xyz\n")
    plugins("acme.noclass", "X = 1\n")
    plugins("acme.ok")
    async with make_host() as host:
        assert host.plugin("acme.boom").reason == (
            f"plugin 'acme.boom': importing 'main' raised RuntimeError: no config file "
            f"(at {d / 'main.py'}:2). fix the error at module level; see the traceback with "
            "'plugbay info acme.boom --traceback'"
        )
        assert "RuntimeError: no config file" in (host.plugin("acme.boom").traceback or "")
        broken = host.plugin("acme.broken").reason or ""
        assert broken.startswith("plugin 'acme.broken': syntax error in 'main': invalid syntax")
        assert "main.py:1)" in broken
        assert "failed: no module named 'not_a_real_module_xyz'" in (
            host.plugin("acme.needs").reason or ""
        )
        assert "module 'main' has no attribute 'P'" in (host.plugin("acme.noclass").reason or "")
        await assert_serving(host)


async def test_exception_in_initialize_fails_it_and_its_dependents_only(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    d = plugins(
        "acme.bad",
        """
        from plugbay import UtilityPlugin

        class P(UtilityPlugin):
            async def initialize(self, context):
                raise ValueError("database password missing")
        """,
    )
    plugins("acme.child", extra='[dependencies]\n"acme.bad" = "^1"\n')
    plugins("acme.ok")
    async with make_host() as host:
        bad = host.plugin("acme.bad")
        assert str(bad.state) == "failed"
        assert bad.reason == (
            f"plugin 'acme.bad': initialize raised ValueError: database password missing "
            f"(at {d / 'main.py'}:6). see the traceback with 'plugbay info acme.bad --traceback'"
        )
        assert (
            bad.traceback is not None and "ValueError: database password missing" in bad.traceback
        )
        child = host.plugin("acme.child")
        assert str(child.state) == "failed"
        assert (child.reason or "").startswith(
            "plugin 'acme.child': not started because a dependency is not active: "
            "'acme.bad' is failed (plugin 'acme.bad': initialize raised ValueError"
        )
        await assert_serving(host)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_hang_in_initialize_is_bounded(
    plugins: PluginFactory, make_host: Callable[..., Host], kind: str
) -> None:
    body = (
        "    async def initialize(self, context):\n        await asyncio.sleep(3600)\n"
        if kind == "async"
        else "    def initialize(self, context):\n        time.sleep(3600)\n"
    )
    plugins(
        "acme.hang",
        "import asyncio, time\nfrom plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        + body,
    )
    plugins("acme.ok")
    host = make_host(init_timeout=0.3)
    async with host:
        rec = host.plugin("acme.hang")
        assert rec.reason == (
            "plugin 'acme.hang': initialize did not finish within 0.3 s "
            f"(at {rec.manifest.path if rec.manifest else ''}). make initialize return promptly "
            "(start long work in a task), or raise resources.init-timeout in the manifest"
        )
        await assert_serving(host)


async def test_dependency_cycle_is_reported_and_the_rest_loads(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.x", extra='[dependencies]\n"acme.y" = "*"\n')
    plugins("acme.y", extra='[dependencies]\n"acme.x" = "*"\n')
    plugins("acme.ok")
    async with make_host() as host:
        for pid in ("acme.x", "acme.y"):
            rec = host.plugin(pid)
            assert str(rec.state) == "failed"
            assert rec.reason == (
                f"plugin '{pid}': cannot be loaded: dependency cycle acme.x → acme.y → acme.x. "
                "break the cycle: one of these plugins must not depend on the next"
            )
        await assert_serving(host)


async def test_missing_dependency(plugins: PluginFactory, make_host: Callable[..., Host]) -> None:
    lonely = plugins("acme.lonely", extra='[dependencies]\n"acme.absent" = "^2"\n')
    plugins("acme.ok")
    async with make_host() as host:
        rec = host.plugin("acme.lonely")
        assert str(rec.state) == "failed"
        assert rec.reason == (
            "plugin 'acme.lonely': cannot be loaded: 'acme.lonely' 1.0.0 requires 'acme.absent' ^2; "
            f"no plugin 'acme.absent' is installed (at {lonely / 'plugin.toml'}:6). "
            "install 'acme.absent', or remove the "
            f"dependency: ^2 under [dependencies] in {lonely / 'plugin.toml'}:6"
        )
        assert rec.error is not None and rec.error.code == "dependency_missing"
        await assert_serving(host)


async def test_two_plugins_with_the_same_id_and_version(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    first = plugins("acme.twin", dirname="one")
    second = plugins("acme.twin", dirname="two")
    plugins("acme.ok")
    async with make_host() as host:
        problem = next(p for p in host.problems if p.code == "plugin_duplicate")
        assert str(problem) == (
            f"plugin 'acme.twin': 'acme.twin' 1.0.0 is provided twice: by {first / 'plugin.toml'} "
            f"and by {second / 'plugin.toml'} (at {second / 'plugin.toml'}). remove one of them, "
            f"or give one a different version; the first ({first / 'plugin.toml'}) is used"
        )
        # one copy is registered and serves; the duplicate is reported, not silently dropped
        assert await host.call("acme.twin", "ping") == "pong from acme.twin 1.0.0"
        await assert_serving(host)


async def test_config_failing_the_schema_is_reported_before_plugin_code_runs(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    plugins(
        "acme.cfg",
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "from plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n    pass\n",
        extra='[config.port]\ntype = "integer"\ndefault = 80\nmaximum = 65535\n',
    )
    plugins("acme.ok")
    async with make_host(config={"acme.cfg": {"port": 70000}}) as host:
        rec = host.plugin("acme.cfg")
        assert rec.reason == (
            "plugin 'acme.cfg': config key 'port' is invalid: 70000 is not a whole number "
            "of at most 65535 (at host config: port). set 'port' to a value it allows, such "
            "as 80 (its default)"
        )
        assert not marker.exists()
        await assert_serving(host)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            'id = "acme.broken"\nversion = [oops\n',
            "the manifest is not valid TOML: Invalid value (at line 2, column 12) (at {path}:2). "
            "fix the TOML syntax (strings need quotes, tables are [name], keys are key = value)",
        ),
        (
            'id = "acme.broken"\nversion = "1.0.0"\ntype = "utility"\nentry = "m:P"\nverison = "2"\n',
            "unknown field 'verison' (at {path}:5). did you mean 'version'?",
        ),
        (
            'id = "acme.broken"\nversion = "1.0.0"\ntype = "utility"\n',
            "missing required field 'entry' (at {path}). add entry = \"my_module:MyPlugin\"",
        ),
        (
            'id = "acme.broken"\nversion = "1.0"\ntype = "utility"\nentry = "m:P"\n',
            "plugin 'acme.broken': version = '1.0' is not a valid version: '1.0' is not a SemVer "
            "2.0.0 version (at {path}:2). write MAJOR.MINOR.PATCH, e.g. '1.2.0'; pre-release and "
            "build go after '-' and '+': '1.2.0-rc.1+build.5'",
        ),
    ],
)
async def test_a_bad_manifest_is_reported_and_the_rest_loads(
    plugins: PluginFactory, make_host: Callable[..., Host], manifest: str, expected: str
) -> None:
    directory = plugins("acme.broken", manifest=manifest)
    plugins("acme.ok")
    async with make_host() as host:
        texts = [str(p) for p in host.problems]
        assert expected.format(path=directory / "plugin.toml") in texts, texts
        await assert_serving(host)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            '[dependencies]\n"acme.ok" = "^^1"\n',
            "dependencies.acme.ok = '^^1' is not a valid range",
        ),
        ('host = "~=1"\n', "host = '~=1' is not a valid range"),
    ],
)
async def test_invalid_range_in_a_manifest(
    plugins: PluginFactory, make_host: Callable[..., Host], extra: str, expected: str
) -> None:
    plugins("acme.bad", extra=extra)
    plugins("acme.ok")
    async with make_host() as host:
        assert any(expected in str(p) for p in host.problems), host.problems
        assert str(host.plugin("acme.bad").state) == "failed"
        await assert_serving(host)


async def test_unknown_plugin_and_command(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.ok")
    async with make_host() as host:
        with pytest.raises(PluginNotFound) as err:
            await host.call("acme.okk", "ping")
        assert str(err.value) == (
            "plugin 'acme.okk': no plugin 'acme.okk' is known to this host. did you mean 'acme.ok'?"
        )
        with pytest.raises(CommandNotFound) as cmd_err:
            await host.call("acme.ok", "pong")
        assert str(cmd_err.value) == (
            "plugin 'acme.ok': has no command 'pong'. did you mean 'ping'? commands: ping"
        )
        await assert_serving(host)


async def test_wrong_parameter_type_never_reaches_the_plugin(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    marker = tmp_path / "called"
    plugins(
        "acme.typed",
        f"""
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def repeat(self, text: str, times: int) -> str:
                open({str(marker)!r}, "w").write("x")
                return text * times

            @command
            def liar(self) -> int:
                return "seven"
        """,
    )
    plugins("acme.ok")
    async with make_host() as host:
        with pytest.raises(ParameterError) as err:
            await host.call("acme.typed", "repeat", text="a", times="3")
        assert str(err.value) == (
            "plugin 'acme.typed': command 'repeat' parameter 'times' expects int, got str "
            "(at repeat.times). call it as repeat(text: str, times: int) -> str"
        )
        assert not marker.exists()
        with pytest.raises(
            ResultTypeError, match="command 'liar' returned str but is declared to return int"
        ):
            await host.call("acme.typed", "liar")
        assert await host.call("acme.typed", "repeat", text="a", times=3) == "aaa"
        await assert_serving(host)


async def test_plugin_raising_or_hanging_in_a_command(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins(
        "acme.flaky",
        """
        import asyncio
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def explode(self) -> None:
                raise KeyError("gone")

            @command
            async def stall(self) -> None:
                await asyncio.sleep(3600)
        """,
        extra="[resources]\ntimeout = 0.2\n",
    )
    plugins("acme.ok")
    async with make_host() as host:
        with pytest.raises(PluginCallError) as err:
            await host.call("acme.flaky", "explode")
        assert str(err.value).startswith(
            "plugin 'acme.flaky': command 'explode' raised KeyError: 'gone'"
        )
        with pytest.raises(PluginTimeout) as t_err:
            await host.call("acme.flaky", "stall")
        assert str(t_err.value).startswith(
            "plugin 'acme.flaky': command 'stall' did not finish within 0.2 s"
        )
        stats = host.info("acme.flaky")["metrics"]["commands"]
        assert stats["explode"]["errors_by_type"] == {"KeyError": 1}
        assert stats["stall"]["errors_by_type"] == {"PluginTimeout": 1}
        await assert_serving(host)


async def test_sys_exit_in_a_plugin_does_not_end_the_host(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins(
        "acme.quitter",
        "import sys\nfrom plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n"
        "    @command\n    def leave(self) -> None:\n        sys.exit(3)\n",
    )
    plugins(
        "acme.early",
        "import sys\nfrom plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        "    async def initialize(self, context):\n        sys.exit(4)\n",
    )
    plugins("acme.ok")
    async with make_host() as host:
        with pytest.raises(PluginCallError, match="command 'leave' raised SystemExit: 3"):
            await host.call("acme.quitter", "leave")
        assert "initialize raised SystemExit: 4" in (host.plugin("acme.early").reason or "")
        await assert_serving(host)


async def test_cleanup_that_hangs_is_bounded(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins(
        "acme.sticky",
        "import asyncio\nfrom plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n"
        "    async def cleanup(self):\n        await asyncio.sleep(3600)\n",
    )
    host = make_host(cleanup_timeout=0.2)
    async with host:
        pass
    assert state(host, "acme.sticky") == "stopped"


async def test_host_version_range_is_honoured(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.future", extra='host = ">=2.0.0"\n')
    plugins("acme.ok", extra=HOST_OK)
    async with make_host() as host:
        rec = host.plugin("acme.future")
        assert str(rec.state) == "failed"
        assert "0.1.0" in (rec.reason or "") and ">=2.0.0" in (rec.reason or "")
        await assert_serving(host)


async def test_system_plugins_receive_events_in_priority_order(
    plugins: PluginFactory, make_host: Callable[..., Host], tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    for pid, prio in (("acme.late", 50), ("acme.early", 5)):
        plugins(
            pid,
            f"""
            from plugbay import SystemPlugin

            class P(SystemPlugin):
                system_hooks = ("plugin.loaded",)

                async def on_system_event(self, event):
                    open({str(seen)!r}, "a").write(self.id + " " + event.data["plugin"] + "\\n")
            """,
            type="system",
            extra=f"priority = {prio}\n",
        )
    plugins("acme.ok", extra='[dependencies]\n"acme.late" = "*"\n"acme.early" = "*"\n')
    async with make_host():
        pass
    lines = seen.read_text().splitlines()
    assert lines[-2:] == ["acme.early acme.ok", "acme.late acme.ok"]


async def test_many_concurrent_calls(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins(
        "acme.sleepy",
        "import asyncio\nfrom plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n"
        "    @command\n    async def nap(self, n: int) -> int:\n        await asyncio.sleep(0.01)\n        return n\n",
    )
    async with make_host() as host:
        results = await asyncio.gather(*(host.call("acme.sleepy", "nap", n=i) for i in range(200)))
        assert results == list(range(200))


def test_host_never_imports_the_http_stack() -> None:
    import subprocess

    code = "import sys, plugbay.runtime.host; print([m for m in ('fastapi','uvicorn') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_info_lists_commands_dependencies_and_dependents(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    plugins("acme.base")
    plugins("acme.top", extra='[dependencies]\n"acme.base" = "^1"\n')
    async with make_host() as host:
        info: dict[str, Any] = host.info("acme.base")
        assert info["dependents"] == ["acme.top"]
        assert host.info("acme.top")["dependencies"] == {"acme.base": "^1"}
        assert info["commands"][0]["signature"] == "ping() -> str"
        assert info["state"] == "active" and info["load_seconds"] > 0
        manager = host.manager
        assert set(manager.monitor) == {"acme.base", "acme.top"}
        assert "inline" in manager.sandbox
        assert manager.loader.discover is not None
        assert manager.get_plugin("acme.top").id == "acme.top"
        assert [r.id for r in manager.list_plugins()] == ["acme.base", "acme.top"]


async def test_an_id_the_host_is_told_about_that_no_plugin_has_is_a_problem_with_the_closest(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A typo in load= or in a plugin's config, here or in the config file, was ignored
    without a word: nothing loaded (yet 'ready'), or a config that never applied."""
    plugins("acme.calc")
    config_file = tmp_path / "plugbay.toml"
    config_file.write_text('[plugins."acme.clac"]\nlevel = 1\n')
    async with Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        load=["acme.calc", "acme.cacl"],
        config={"acme.calk": {"level": 2}},
        config_file=config_file,
    ) as host:
        said = {(p.where, p.message, p.hint) for p in host.problems}
        for where, typo in (
            ("Host(load=...)", "acme.cacl"),
            ("Host(config=...)", "acme.calk"),
            (f"{config_file}:1", "acme.clac"),  # the table's line
        ):
            assert (where, f"'{typo}' is not the id of any plugin found",
                    "did you mean 'acme.calc'?") in said, said  # fmt: skip
        assert str(host.plugin("acme.calc").state) == "active"  # the rest serves


async def test_a_disabled_plugin_is_listed_where_it_would_run(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """A sandboxed plugin disabled at the host's start was listed 'inline' (the record's
    default), though it runs in a worker once enabled."""
    plugins("acme.off")
    async with make_host(inline=[]) as host:
        assert host.plugin("acme.off").isolation == "process"
        await host.disable("acme.off", "noisy")
    async with make_host(inline=[]) as host:
        listed = {r.id: r.to_dict() for r in host.manager.list_plugins()}
        assert listed["acme.off"]["state"] == "disabled"
        assert listed["acme.off"]["isolation"] == "process"
