"""The example in ``plugbay.web``'s docstring, run as written by an application that
embeds a ``Host`` and serves its API itself: an authenticated request is answered."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import plugbay.web
from plugbay import Host
from tests.conftest import PluginFactory

CODE = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def greet(self, name: str) -> str:
        return f"Hello, {name}!"
"""


def docstring_example() -> str:
    doc = plugbay.web.__doc__ or ""
    found = re.search(r"::\n\n((?:    .*\n|\n)+)", doc)
    assert found, "plugbay.web's docstring has an example (a '::' block)"
    return textwrap.dedent(found.group(1))


def post(url: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


async def test_the_docstring_example_serves_the_api_to_a_caller_with_the_token(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    example = docstring_example()
    # 8750 is plugbay run's own port: an example there collides with the host make run serves
    assert '"127.0.0.1", 0)' in example, example
    plugins("acme.greeter", CODE)
    state_dir = tmp_path / "state"
    seen: dict[str, Any] = {}

    async def use(server: Any, token: str) -> None:
        url = f"{server.url}/api/v1/plugins/acme.greeter/commands/greet"
        seen["answer"] = await asyncio.to_thread(post, url, token, {"name": "Ada"})

    body = example.replace("...", "await use(server, token)")
    source = "async def run(host, state_dir):\n" + textwrap.indent(body, "    ")
    scope: dict[str, Any] = {"use": use}
    exec(compile(source, "plugbay.web docstring", "exec"), scope)
    async with Host(plugins.root, state_dir=state_dir, entry_points=False) as host:
        await scope["run"](host, state_dir)
    assert seen["answer"] == (200, {"result": "Hello, Ada!"})
