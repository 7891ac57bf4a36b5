"""Config keys kept aside for another installed version of a plugin.

A new version may add a config key, even a required one with no default. To upgrade to
it, the operator sets the key first, while the old version serves: with ``plugbay
config ID KEY=VALUE`` or in ``plugbay.toml``. A key the serving version does not declare
and another installed version of the same plugin does is *kept aside*: it is checked
against the schema of the newest version declaring it, stored with the other values,
not passed to a version that does not declare it, and passed once a version declaring
it serves. ``plugbay config ID`` shows it as kept for that version. A key that no
installed version declares is refused, as any unknown key is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import ConfigError
from plugbay.model._config_schema import ConfigSchema
from plugbay.model._config_words import together
from plugbay.runtime.live_config import masked, unmasked

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest
    from plugbay.runtime.host import Host

__all__ = [
    "checked_config",
    "kept_aside",
    "kept_view",
    "passed",
    "shown",
    "unshown",
    "versions_of",
    "with_the_rest",
]


def kept_aside(
    manifest: PluginManifest | None, raw: Iterable[str], versions: Iterable[PluginManifest]
) -> dict[str, PluginManifest]:
    """Each key of ``raw`` that ``manifest`` does not declare and another installed
    version (``versions``, newest first) does: key → the newest version declaring it."""
    declared = set(manifest.config.fields) if manifest and manifest.config else set()
    others = [v for v in versions if v.config is not None and v is not manifest]
    aside: dict[str, PluginManifest] = {}
    for key in raw:
        if key in declared:
            continue
        other = next((v for v in others if key in v.config.fields), None)  # type: ignore[union-attr]
        if other is not None:
            aside[key] = other
    return aside


def passed(
    manifest: PluginManifest, raw: Mapping[str, Any], versions: Iterable[PluginManifest]
) -> dict[str, Any]:
    """``raw`` without the keys kept aside for another version: what ``manifest`` gets."""
    aside = kept_aside(manifest, raw, versions)
    return {k: v for k, v in raw.items() if k not in aside}


def checked_config(
    plugin_id: str,
    manifest: PluginManifest | None,
    values: Mapping[str, Any],
    layers: tuple[Mapping[str, Any], Mapping[str, Any]],
    versions: list[PluginManifest],
) -> dict[str, Any]:
    """The full config the serving ``manifest`` runs with once the run-time ``values``
    are set (``layers``: the host config file's and the host's own arguments, below and
    above them). A key kept aside is checked against the version declaring it; any
    other key the serving version does not declare is refused, naming the key."""
    file_values, arg_values = layers
    merged = {**file_values, **values, **arg_values}
    aside = kept_aside(manifest, merged, versions)  # a key's fate is its own: once for all
    problems: list[ConfigError] = []  # every key refused, in one refusal
    for key in (k for k in values if k in aside):
        other = aside[key]
        assert other.config is not None
        field = ConfigSchema(plugin_id, {key: other.config.fields[key]})
        for exc in field.problems({key: values[key]}, "run-time config"):
            exc.message += f" (as {other.version} declares it)"
            problems.append(exc)
    merged = {k: v for k, v in merged.items() if k not in aside}
    if problems:
        schema = manifest.config if manifest is not None else None
        problems += schema.problems(merged, "run-time config") if schema is not None else []
        raise together(plugin_id, problems, source="run-time config")
    schema = manifest.config if manifest is not None else None
    if schema is None:
        if merged:
            raise ConfigError(
                f"config was given ({', '.join(sorted(merged))}) but the plugin declares none",
                plugin=plugin_id,
                where=manifest.location if manifest else None,
                hint="add a [config] schema to the manifest first, or install a version "
                "that declares these keys",
            )
        return {}
    return schema.validate(merged, source="run-time config")


def with_the_rest(
    host: Host, plugin_id: str, values: Mapping[str, Any], refusal: ConfigError
) -> ConfigError:
    """``refusal`` (of keys of ``values`` a stricter check refused first, such as the API's
    check of JSON types) with every other problem the host's own check
    (:meth:`Host.set_config`) finds in ``values``: a required key missing, a value kept
    aside for another version. One refusal for all, each key in the host's words, as the
    CLI gets them; a key both refuse is said once, as ``refusal`` says it."""
    manifest = host.plugin(plugin_id).manifest
    layers = host.config_layers(plugin_id)
    try:
        checked_config(plugin_id, manifest, values, layers, versions_of(host, plugin_id))
    except ConfigError as exc:
        rest = exc.details.get("problems") or []
    else:
        return refusal
    said = refusal.details.get("problems") or []
    keys = {p["key"] for p in said}
    problems = [
        ConfigError(p["message"], plugin=plugin_id, where=p["where"], hint=p["hint"])
        for p in [*said, *(p for p in rest if p["key"] not in keys)]
    ]
    return together(plugin_id, problems, source="run-time config") if problems else refusal


def versions_of(host: Host, plugin_id: str) -> list[PluginManifest]:
    """Every installed version of ``plugin_id`` the host knows, newest first."""
    registry = host.registry
    if plugin_id not in registry:
        return []
    return [registry.get(plugin_id, v) for v in registry.versions(plugin_id)]


def kept_view(host: Host, plugin_id: str) -> dict[str, dict[str, Any]]:
    """Each key set (at run time or in the host config) that the serving version does
    not pass on: ``{KEY: {"value", "version", "type"}}`` (a secret value as ``***``)."""
    manifest = host.plugin(plugin_id).manifest
    raw = host._config_for(plugin_id)  # every layer, merged as a start merges them
    aside = kept_aside(manifest, raw, versions_of(host, plugin_id))
    view: dict[str, dict[str, Any]] = {}
    for key, other in aside.items():
        assert other.config is not None
        view[key] = {
            "value": masked(other, {key: raw[key]})[key],
            "version": str(other.version),
            "type": other.config.fields[key].type,
        }
    return view


def shown(host: Host, plugin_id: str, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """``values`` with every field any installed version marks ``secret`` as ``***``."""
    out = dict(values or {})
    for manifest in versions_of(host, plugin_id):
        out = masked(manifest, out)
    return out


def unshown(host: Host, plugin_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """New run-time values sent back after :func:`shown`: a secret still ``***`` keeps
    its current run-time value."""
    current = host.runtime_config(plugin_id)
    out = dict(values)
    for manifest in versions_of(host, plugin_id):
        out = unmasked(manifest, out, current)
    return out
