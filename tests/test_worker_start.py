"""What a worker is sent to start, and what it builds only when the host asks.

A worker takes the manifest the host read and checked (``Load.manifest``) instead of
reading it again, and builds its commands' JSON Schemas only on a ``Describe``: each
page those steps would touch is a page every idle worker keeps (``docs/architecture.md``,
'Idle worker memory, fifth pass')."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from plugbay import ParameterError, PluginCallError, PluginCrashed
from plugbay.isolation._process_parts import RemoteSpec
from plugbay.isolation.process import ProcessHandle
from plugbay.runtime.host import Host
from tests._served import api_served
from tests._waiting import until
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow

CODE = """
import os
from dataclasses import dataclass
from plugbay import UtilityPlugin, command

@dataclass
class Point:
    x: int
    y: int

class P(UtilityPlugin):
    @command
    def move(self, p: Point, dx: int = 1, token: str = "") -> Point:
        return Point(p.x + dx, p.y)

    @command
    def pid(self) -> int:
        return os.getpid()

    @command
    def crash(self) -> None:
        os._exit(9)
"""

# a plugin that owns its worker process and answers the host's Describe in bad faith
LIAR = (
    CODE
    + """
from plugbay.isolation import worker as _worker

async def _lie(self):
    return {"move": ["not", "a", "schema"], "pid": 7}

_worker.Worker._schemas = _lie
"""
)


def _host(plugins: PluginFactory, tmp_path: Path, code: str = CODE, **kwargs: object) -> Host:
    plugins("acme.shapes", code, extra='isolation = "process"\n')
    plugins("acme.ok")
    return Host(plugins.root, state_dir=tmp_path / "state", entry_points=False, **kwargs)  # type: ignore[arg-type]


async def test_schemas_are_built_when_asked_and_kept_by_the_host(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    async with _host(plugins, tmp_path) as host:
        rec = host.plugin("acme.shapes")
        move = rec.commands["move"]
        assert isinstance(move, RemoteSpec) and isinstance(rec.handle, ProcessHandle)
        # what the host checks and redacts with came at start; the schemas did not
        assert move.signature() == "move(p: Point, dx: int = 1, token: str = '') -> Point"
        assert [(p.name, p.default) for p in move.params][1:] == [("dx", 1), ("token", "")]
        assert move.schemas is None and move.schema() == {}
        with pytest.raises(ParameterError, match="parameter 'dx' expects int"):
            await host.call("acme.shapes", "move", p={"x": 1, "y": 2}, dx="far")

        await rec.describe_commands()
        schema = move.schema()
        assert schema["params"]["properties"]["p"] == {"$ref": "#/$defs/Point"}
        assert schema["params"]["required"] == ["p"]
        assert schema["result"] == {"$ref": "#/$defs/Point"}
        assert schema["$defs"]["Point"]["required"] == ["x", "y"]
        assert rec.commands["pid"].schema()["result"] == {"type": "integer"}
        # kept: asking again sends the worker nothing
        handle = rec.handle

        def no_request(*args: object, **kwargs: object) -> None:
            raise AssertionError("the schemas were asked for twice")

        handle._request = no_request  # type: ignore[method-assign,assignment]
        await rec.describe_commands()
        assert move.schema() == schema
        # what `plugbay info` and the HTTP API show
        shown = {c["name"]: c for c in host.info("acme.shapes")["commands"]}
        assert shown["move"]["signature"] == move.signature()


async def test_the_http_api_shows_a_workers_command_schemas(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    host = _host(plugins, tmp_path)
    async with host, api_served(host) as served:
        auth = {"Authorization": f"Bearer {served.token}"}
        async with httpx.AsyncClient(base_url=served.url, headers=auth, timeout=30) as http:
            detail = (await http.get("/api/v1/plugins/acme.shapes")).json()
        move = next(c for c in detail["commands"] if c["name"] == "move")
        assert move["params_schema"]["properties"]["dx"] == {"type": "integer", "default": 1}
        assert move["result_schema"] == {"$ref": "#/$defs/Point"}
        assert set(move["defs"]["Point"]["properties"]) == {"x", "y"}


async def test_a_restarted_worker_loads_the_manifest_the_host_checked(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    async with _host(plugins, tmp_path, restart_backoff=0.1) as host:
        first = await host.call("acme.shapes", "pid")
        # the file on disk is no longer a manifest: the worker never reads it again
        manifest = host.plugin("acme.shapes").manifest
        assert manifest is not None and manifest.path is not None
        manifest.path.write_text("this is = not [ a manifest")
        with pytest.raises(PluginCrashed):
            await host.call("acme.shapes", "crash")
        await until(lambda: str(host.plugin("acme.shapes").state) == "active", "a restart", 10)
        assert await host.call("acme.shapes", "pid") != first
        moved = await host.call("acme.shapes", "move", p={"x": 1, "y": 2}, dx=2)
        assert moved == {"x": 3, "y": 2}


async def test_a_worker_lying_about_its_schemas_is_refused_and_the_host_serves_on(
    plugins: PluginFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with _host(plugins, tmp_path, code=LIAR) as host:
        rec = host.plugin("acme.shapes")
        assert rec.handle is not None
        with pytest.raises(PluginCallError, match="sent no JSON Schemas for its command 'move'"):
            await rec.handle.describe_commands(5)
        with caplog.at_level(logging.WARNING, logger="plugbay"):
            await rec.describe_commands()  # `plugbay info` and the API: shown without schemas
        assert "acme.shapes: its commands' JSON Schemas are unknown" in caplog.text
        assert rec.commands["move"].schema() == {}
        assert host.info("acme.shapes")["commands"]
        # the plugin still answers, and so does its neighbour
        assert await host.call("acme.shapes", "move", p={"x": 0, "y": 0}) == {"x": 1, "y": 0}
        assert await host.call("acme.ok", "ping") == "pong from acme.ok 1.0.0"
