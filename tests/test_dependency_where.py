"""A dependency error says where to look in its ``where`` (the CLI's and the API's "at"),
not only inside its hint: the ``FILE:LINE`` of the range to change, the failing plugin's
own first; and it names the table that range is under, ``[optional-dependencies]`` or
``[services] optional`` as well as ``[dependencies]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugbay.api.errors import MissingDependencyError, ResolutionError
from plugbay.model._manifest_lines import dependency_at, dependency_heading
from plugbay.model.manifest import load_manifest
from tests.conftest import PluginFactory


async def test_each_dependency_error_names_its_line_as_where(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("acme.lib", version="1.0.0")
    gone = plugins("acme.app", extra='[dependencies]\n"acme.gone" = "^1"\n')
    picky = plugins("acme.picky", extra='[dependencies]\n# newer only\n"acme.lib" = ">=2"\n')
    empty = plugins("acme.empty", extra='[dependencies]\n"acme.lib" = ">1,<1.0.0.post0"\n')
    plugins("acme.user", extra='[dependencies]\n"acme.app" = "^1"\n')
    async with make_host() as host:
        assert await host.call("acme.lib", "ping") == "pong from acme.lib 1.0.0"
        missing = host.plugin("acme.app").error
        assert isinstance(missing, MissingDependencyError)
        assert missing.where == f"{gone / 'plugin.toml'}:6"
        assert f"(at {gone / 'plugin.toml'}:6)" in str(missing)
        conflict = host.plugin("acme.picky").error
        assert isinstance(conflict, ResolutionError)
        assert conflict.where == f"{picky / 'plugin.toml'}:7"
        no_room = host.plugin("acme.empty").error
        assert isinstance(no_room, ResolutionError)
        assert no_room.where == f"{empty / 'plugin.toml'}:6"
        # a plugin blocked by its dependency's failure points where that one's hint does
        blocked = host.plugin("acme.user").error
        assert blocked is not None and blocked.where == missing.where


async def test_a_conflict_points_first_at_the_failing_plugins_own_range(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("acme.base", version="1.0.0")
    plugins("acme.base", version="2.0.0")
    plugins("acme.new", extra='[dependencies]\n"acme.base" = "^2"\n')
    old = plugins("acme.old", extra='\n[dependencies]\n"acme.base" = "^1"\n')
    async with make_host() as host:
        error = host.plugin("acme.old").error
        assert isinstance(error, ResolutionError)
        assert error.where == f"{old / 'plugin.toml'}:7"


async def test_an_optional_dependency_range_is_said_to_be_under_its_own_table(
    plugins: PluginFactory, make_host: Callable[..., Any]
) -> None:
    plugins("acme.lib", version="1.0.0")
    plugins("acme.lib", version="2.0.0")
    other = plugins("acme.other", extra='[dependencies]\n"acme.lib" = "^2"\n')
    app = plugins(
        "acme.app",
        extra='[dependencies]\n"acme.other" = "^1"\n\n[optional-dependencies]\n"acme.lib" = "^1"\n',
    )
    async with make_host() as host:
        assert await host.call("acme.other", "ping") == "pong from acme.other 1.0.0"
        error = host.plugin("acme.app").error
        assert isinstance(error, ResolutionError)
        assert error.hint is not None
        assert f"^1 under [optional-dependencies] in {app / 'plugin.toml'}:9" in error.hint
        assert f"^2 under [dependencies] in {other / 'plugin.toml'}:6" in error.hint
        assert error.where == f"{app / 'plugin.toml'}:9"


def test_an_optional_service_is_found_at_its_line_under_services_optional(
    plugins: PluginFactory,
) -> None:
    app = plugins(
        "acme.app",
        extra='[services]\nrequires = { "clock" = "^1" }\n\n[services.optional]\n"cache" = "^2"\n',
    )
    manifest = load_manifest(app / "plugin.toml")
    assert dependency_heading(manifest, "service:cache") == "[services] optional"
    assert dependency_at(manifest, "service:cache") == f"{app / 'plugin.toml'}:9"
    assert dependency_heading(manifest, "service:clock") == "[services] requires"
    assert dependency_at(manifest, "service:clock") == f"{app / 'plugin.toml'}:6"
