"""A plugin's context after its instance stopped, and the context's errors at the
author's line.

Real plugins on a real host, inline and in a sandboxed worker: a context an old
instance left behind (held by a thread or a callback) refuses its store, its events
and its tasks, saying whose it is and what to use instead, so the next version's
migrated store is never written over; and an error the context raises names the
line of the plugin's code that made the call, as the plugin's own errors do.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from plugbay import PlugbayError, PluginContext, PluginStateError
from plugbay.runtime.host import Host
from tests._waiting import until
from tests.conftest import PluginFactory

KEEPER = """
import asyncio
from plugbay import PluginContext, UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context: PluginContext) -> None:
        await super().initialize(context)
        context.storage.set("schema", {schema})

    @command
    def schema(self) -> int:
        return self.context.storage.get("schema", type=int)

    @command
    def bad_value(self) -> None:
        self.context.storage.set("k", object())  # line 16

    @command
    def bad_read(self) -> str:
        return self.context.storage.get("schema", type=str)  # line 20

    @command
    async def bad_event(self) -> int:
        return await self.context.events.emit("acme.said", {{"what": object()}})  # line 24

    @command
    async def late(self) -> None:
        # a task that outlives its cleanup: cancelled, it goes on using the context
        async def linger() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass
            while True:  # every turn of the loop, until the host's bound gives up on it
                try:
                    self.context.storage.set("late", "from the stopped instance")
                except Exception as exc:
                    self.context.logger.warning("refused: %s", exc)
                    return
                await asyncio.sleep(0)

        self.context.tasks.spawn(linger, name="linger")
"""


def keeper(plugins: PluginFactory, isolation: str, version: str, schema: int) -> Path:
    return plugins(
        "acme.keeper",
        KEEPER.format(schema=schema),
        version=version,
        extra=f'isolation = "{isolation}"\n[events]\nemits = ["acme.said"]\n',
    )


def make_host(plugins: PluginFactory, tmp_path: Path, isolation: str) -> Host:
    return Host(
        plugins.root,
        state_dir=tmp_path / "state",
        entry_points=False,
        init_timeout=20,
        cleanup_timeout=1,  # inline, the host's bound is the lingering task's too
        inline=["*"] if isolation == "inline" else [],
    )


async def test_an_old_instance_s_context_refuses_and_keeps_the_new_version_s_store(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    keeper(plugins, "inline", "1.0.0", schema=1)
    async with make_host(plugins, tmp_path, "inline") as host:
        old = host.plugin("acme.keeper").handle.instance.context  # type: ignore[union-attr]
        assert isinstance(old, PluginContext)
        upgraded = keeper(PluginFactory(tmp_path / "v2"), "inline", "2.0.0", schema=2)
        await host.reload("acme.keeper", source=upgraded)

        with pytest.raises(PluginStateError) as refused:
            old.storage.set("schema", 1)  # what a thread of version 1 would still do
        words = str(refused.value)
        assert "context.storage refused" in words
        assert "this context belongs to version 1.0.0 of 'acme.keeper'" in words
        assert "stopped (or reloaded) at" in words
        assert "use the context the running instance's initialize was given" in words
        assert await host.call("acme.keeper", "schema") == 2  # the migration is kept
        with pytest.raises(PluginStateError, match=r"belongs to version 1\.0\.0"):
            old.storage.get("schema")
        with pytest.raises(PluginStateError, match=r"context.events.emit\('acme.said'\) refused"):
            await old.events.emit("acme.said", {"what": "late"})
        with pytest.raises(PluginStateError, match=r"tasks\.spawn.*belongs to version 1\.0\.0"):
            old.tasks.spawn(_nothing, name="late")
        # what harms nobody still answers: its own config and its logger
        assert dict(old.config) == {}
        old.logger.info("still heard")


async def _nothing() -> None:
    pass


async def test_a_task_left_running_after_cleanup_is_refused_the_store(
    plugins: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # inline only: a worker ends its process as its cleanup answers, so what a task left
    # behind there says after it has no channel left to say it on
    isolation = "inline"
    caplog.set_level(logging.WARNING)
    keeper(plugins, isolation, "1.0.0", schema=1)
    async with make_host(plugins, tmp_path, isolation) as host:
        await host.call("acme.keeper", "late")
        upgraded = keeper(PluginFactory(tmp_path / "v2"), isolation, "2.0.0", schema=2)
        await host.reload("acme.keeper", source=upgraded)

        def refused() -> list[str]:
            return [r.getMessage() for r in caplog.records if "refused:" in r.getMessage()]

        said = (await until(refused, "the lingering task's refusal"))[0]
        assert "this context belongs to version 1.0.0 of 'acme.keeper'" in said
        assert await host.call("acme.keeper", "schema") == 2


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_a_context_s_error_names_the_plugin_s_line_that_called_it(
    plugins: PluginFactory, tmp_path: Path, isolation: str
) -> None:
    code = keeper(plugins, isolation, "1.0.0", schema=1) / "main.py"
    async with make_host(plugins, tmp_path, isolation) as host:
        for command, line, words in [
            ("bad_value", 16, "cannot store object under 'k'"),
            ("bad_read", 20, "the value under 'schema' is not a str"),
            ("bad_event", 24, "the payload of event 'acme.said' cannot be sent"),
        ]:
            with pytest.raises(PlugbayError) as failed:
                await host.call("acme.keeper", command)
            error = failed.value
            assert words in str(error)
            assert error.where == f"{code}:{line}", command
            assert f"(at {code}:{line})" in str(error)
            assert error.details["raised_at"]["line"] == line
            assert error.details["raised_at"]["code"].endswith(f"# line {line}")
