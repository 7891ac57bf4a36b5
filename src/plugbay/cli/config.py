"""``plugbay config ID [key=value …] [--unset KEY …]``: a plugin's config, shown or changed
while it serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from plugbay.api.errors import ConfigError, PlugbayError
from plugbay.cli._console import JsonOpt, fail, out
from plugbay.cli._host import in_process, refusal
from plugbay.cli._options import (
    ConfigOpt,
    PluginIdArg,
    PluginsOpt,
    StateOpt,
    add_command,
    host_kwargs,
    print_json,
    to_builtins,
)
from plugbay.model._config_words import pointing
from plugbay.runtime.config_aside import kept_view, shown
from plugbay.runtime.live_config import masked, pending

if TYPE_CHECKING:
    from plugbay.runtime.host import Host

__all__ = ["register"]

PANEL = "plugins"


def config(
    plugin_id: PluginIdArg,
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="KEY=VALUE",
            help="key=value to set (JSON for numbers, lists…; text for a string key)",
        ),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(
            "--unset",
            metavar="KEY",
            help="Drop KEY's run-time value: the host config's value, else the manifest's "
            "default, applies again (repeat for more keys).",
        ),
    ] = None,
    plugins: PluginsOpt = None,
    state: StateOpt = Path(".plugbay"),
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a plugin's config (each key, its value, type and limits), or change keys.

    The values are checked against the manifest's config schema with the host config's
    layer, as at start: a bad one is refused naming the key, and nothing changes. A
    running plugin takes them through its on_config_change hook when it has one, else
    it is swapped with state handover (its old version serves until then). A plugin
    that is not active takes them at its next start, and the answer says what starts
    it. Keys not named keep their run-time values; --unset KEY drops one, so the host
    config's value or the manifest's default applies again (key=null sets JSON null,
    the text "null" for a string key). A key the serving version does not declare but
    another installed version does (a new version's required key) is kept aside for it,
    shown as kept for that version, and passed once it serves (a change of such keys
    alone leaves the serving version as it is: no hook, no reload). Every change is in
    'plugbay history ID'.
    """
    from plugbay.web.client import connect, running_host

    change = _Change(pairs or [], unset or [])
    try:
        client = connect(state)
        if client is not None:
            with client:
                view = client.config(plugin_id)
                if change:
                    values = change.applied(plugin_id, view["runtime"], _keys(view))
                    view = client.set_config(plugin_id, values)
        else:
            running = running_host(state)
            if running is not None and change:
                raise refusal(running, state, "config")
            view = in_process(
                host_kwargs(plugins, state, config_file),
                lambda host: _local(host, plugin_id, change),
                as_json=as_json,
            )
    except ConfigError as exc:  # the API's refusal: its hint ends with the API's path
        fail(_pointing_here(exc, plugin_id), as_json=as_json)
    except PlugbayError as exc:
        fail(exc, as_json=as_json)
    _show(view, change, as_json=as_json)


class _Change:
    """What the command line asks: keys to set, keys to drop."""

    def __init__(self, pairs: list[str], unset: list[str]) -> None:
        self.pairs = pairs
        self.unset = unset

    def __bool__(self) -> bool:
        return bool(self.pairs or self.unset)

    def only_kept(self, view: dict[str, Any]) -> list[str]:
        """The keys named, when the serving version declares none of them (each is kept
        aside for another version): its config is unchanged, so nothing was applied."""
        named = sorted({pair.partition("=")[0] for pair in self.pairs} | set(self.unset))
        return [] if any(key in view["schema"] for key in named) else named

    def applied(
        self, plugin_id: str, runtime: dict[str, Any], schema: dict[str, Any]
    ) -> dict[str, Any]:
        """The run-time values after the change (the host checks them)."""
        for key in self.unset:
            if key not in schema:
                raise ConfigError(
                    f"cannot unset '{key}': the plugin has no such config key",
                    plugin=plugin_id,
                    hint=f"its config keys: {', '.join(sorted(schema)) or 'none'}",
                )
        kept = {k: v for k, v in runtime.items() if k not in self.unset}
        return {**kept, **_values(plugin_id, self.pairs, schema)}


async def _local(host: Host, plugin_id: str, change: _Change) -> dict[str, Any]:
    rec = host.plugin(plugin_id)
    schema = rec.manifest.config.describe() if rec.manifest and rec.manifest.config else {}
    if change:
        kept = kept_view(host, plugin_id)
        values = change.applied(plugin_id, host.runtime_config(plugin_id), {**kept, **schema})
        try:
            rec = await host.set_config(plugin_id, values)
        except ConfigError as exc:
            raise _pointing_here(exc, plugin_id) from None
    return {
        "plugin": plugin_id,
        "config": to_builtins(masked(rec.manifest, rec.config)),
        "runtime": to_builtins(shown(host, plugin_id, host.runtime_config(plugin_id))),
        "schema": to_builtins(schema),
        "pending": pending(rec),
        "kept": to_builtins(kept_view(host, plugin_id)),
    }


def _pointing_here(error: ConfigError, plugin_id: str) -> ConfigError:
    """A refusal of config keys, its hint ending with the command that shows them."""
    return pointing(error, f"'plugbay config {plugin_id}' shows its keys, types and limits")


def _keys(view: dict[str, Any]) -> dict[str, Any]:
    """Each key a change may name: the serving version's, and those kept aside for
    another version (each with its ``type``)."""
    return {**view.get("kept", {}), **view["schema"]}


def _values(plugin_id: str, pairs: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` pairs as values: text for a string key, JSON for the rest (the
    schema's own check then names a value of the wrong kind)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"'{pair}' is not key=value",
                plugin=plugin_id,
                hint="write key=value, e.g. greeting=Hello or max-items=20",
            )
        kind = schema.get(key, {}).get("type")
        if kind == "string" or kind is None:
            values[key] = text
            continue
        try:
            values[key] = json.loads(text)
        except ValueError:
            values[key] = text
    return values


def _show(view: dict[str, Any], change: _Change, *, as_json: bool) -> None:
    kept = change.only_kept(view) if change else []
    if as_json:
        print_json({"ok": True, **view, "unchanged": bool(kept)} if change else view)
        return
    if kept:
        out.print(
            f"{view['plugin']}: the serving version declares none of {escape(', '.join(kept))} "
            "(each is kept for a version that does), so the config it runs with is "
            "unchanged: it was not reloaded, and its on_config_change hook did not run"
        )
    elif change:
        out.print(f"{view['plugin']}: config changed")
    if view.get("pending"):
        out.print(f"[yellow]not in effect yet:[/] {escape(view['pending'])}")
    table = Table(box=None, pad_edge=False)
    for column in ("key", "value", "set at run time", "type", "limits"):
        table.add_column(column)
    for key, field in view["schema"].items():
        limits = _limits(field)
        table.add_row(
            key, escape(json.dumps(view["config"].get(key))),
            escape(json.dumps(view["runtime"][key])) if key in view["runtime"] else "",
            field.get("type", ""), escape(", ".join(f"{k} {v}" for k, v in limits.items())),
        )  # fmt: skip
    if view["schema"]:
        out.print(table)
    else:
        out.print(f"{view['plugin']} declares no config")
    for key, kept in view.get("kept", {}).items():
        out.print(
            f"{escape(key)} = {escape(json.dumps(kept['value']))}: kept for version "
            f"{kept['version']}, which declares it (not passed to the serving version)"
        )


def _limits(field: dict[str, Any]) -> dict[str, str]:
    """A key's limits for people: its pattern as written (every view also has it
    anchored for JSON Schema validators, under ``pattern``: ``ConfigField.describe``)."""
    limits = {
        k: _written(v, field.get("type"))
        for k, v in field.items()
        if k not in ("type", "required", "description")
    }
    if "pattern-written" in limits:
        limits["pattern"] = limits.pop("pattern-written")
    return limits


def _written(value: Any, kind: Any) -> str:
    """A limit as the operator writes a value on the command line: JSON (``true``, not
    Python's ``True``), an integer key's bound whole (``1``, not ``1.0``), text as is."""
    if isinstance(value, str):
        return value  # a pattern or its hint, as the manifest has it
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


def register(app: typer.Typer) -> None:
    add_command(app, config, panel=PANEL)
