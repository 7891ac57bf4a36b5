"""A plugin's config checked at a start or swap, and a bad value blamed on its layer.

The values a version starts with come from three layers: the host config file
(``[plugins."ID"]`` in ``plugbay.toml``), the run-time values the operator set with
``plugbay config`` (kept in the state), and an application's own ``Host(config=...)``.
When a new version's schema refuses a value (an upgrade whose ``enum`` changed, a key
it no longer has), the error names the layer the value came from and how to drop it
there: a run-time value is not in any file the operator could look at.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from plugbay.api.errors import ConfigError, PlugbayError
from plugbay.model._manifest_read import parse_toml
from plugbay.model._toml_lines import key_line, key_lines
from plugbay.model.manifest import PluginManifest

__all__ = [
    "at_its_source",
    "grant_tables",
    "in_the_file",
    "plugin_tables",
    "validated_config",
]


def validated_config(manifest: PluginManifest, raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` (every layer merged) checked against the manifest's schema, defaults filled
    in; :class:`ConfigError` naming the key otherwise."""
    if manifest.config is None:
        if raw:
            raise ConfigError(
                f"config was given ({', '.join(sorted(raw))}) but the plugin declares none",
                plugin=manifest.id,
                where=manifest.location,
                hint="remove it from the host config, or add a [config] schema to the manifest",
            )
        return {}
    return manifest.config.validate(raw, source="host config")


def at_its_source(
    error: ConfigError,
    plugin_id: str,
    raw: Mapping[str, Any],
    runtime: Mapping[str, Any] | None,
) -> ConfigError:
    """``error`` with the blame on the run-time layer when the values it names were set
    there (``runtime``: that layer), and how to drop them; else as it is."""
    named = _named(error, raw)
    at_run_time = [key for key in named if runtime and key in runtime]
    if not at_run_time:
        return error
    keys = ", ".join(at_run_time)
    unset = " ".join(f"--unset {key}" for key in at_run_time)
    error.where = f"run-time config set with 'plugbay config {plugin_id}': {keys}"
    error.hint = (
        f"{error.hint}; 'plugbay config {plugin_id} {unset}' drops the run-time value "
        "(the host config's value, else the manifest's default, applies again)"
        if error.hint
        else f"'plugbay config {plugin_id} {unset}' drops the run-time value"
    )
    return error


def in_the_file(
    error: ConfigError, plugin_id: str, raw: Mapping[str, Any], path: Path | None
) -> ConfigError:
    """``error`` (blamed on the ``host config`` layer) pointing at ``FILE:LINE`` of the host
    config file ``path`` for each key it names that the file's ``[plugins."ID"]`` sets to
    the value refused; a key the file does not set so (``Host(config=...)`` set it) keeps
    its words. Read only for a refusal, and once: the lines are those of the text the
    values were read from; a start that passes reads no file again."""
    if path is None or not (error.where or "").startswith("host config: "):
        return error
    try:
        text = path.read_text(encoding="utf-8")
        data = parse_toml(text, str(path), what="the host config", error=ConfigError)
    except (PlugbayError, OSError, UnicodeDecodeError):  # gone or changed since the start
        return error
    table = (data.get("plugins") or {}).get(plugin_id)

    def line_of(where: str | None) -> str | None:
        source, _, at = (where or "").partition(": ")
        key = at.split(".")[0].split("[")[0]
        if source != "host config" or not isinstance(table, dict) or key not in table:
            return None
        if key in raw and table[key] != raw[key]:
            return None  # another layer's value was refused
        line = key_line(text, ("plugins", plugin_id, key))
        return f"{path}:{line}" if line else str(path)

    problems = error.details.get("problems") or []
    for problem in problems:
        problem["where"] = line_of(problem.get("where")) or problem.get("where")
    lines = [line_of(f"host config: {p['key']}") for p in problems] or [line_of(error.where)]
    if all(lines):
        error.where = ", ".join(dict.fromkeys(line for line in lines if line))
    return error


def plugin_tables(
    path: Path | None, tables: Iterable[str], known: Collection[str]
) -> dict[str, list[str]]:
    """The host config file's ``[plugins."ID"]`` tables (``tables``: their ids) by where
    each is: ``FILE:LINE`` for one that names no plugin found (``known``), so the operator
    sees which table to fix; the file for the rest. The file is read again only then."""
    return _by_line(path, ("plugins",), tables, known, str(path or "the host config"))


def grant_tables(
    path: Path | None, grants: Iterable[str], known: Collection[str]
) -> dict[str, list[str]]:
    """The plugin ids ``[policy.grants]`` of the host config file ``path`` grants to, by
    where each is: ``FILE:LINE`` of one that names no plugin found (``known``), as
    :func:`plugin_tables` says a table's; the file and table for the rest."""
    where = f"{path or 'the host config'} [policy.grants]"
    return _by_line(path, ("policy", "grants"), grants, known, where)


def _by_line(
    path: Path | None,
    table: tuple[str, ...],
    ids: Iterable[str],
    known: Collection[str],
    where: str,
) -> dict[str, list[str]]:
    """``ids`` (keys of ``table`` in the file at ``path``) by where each is: ``FILE:LINE``
    for one not ``known``, else ``where``. The file is read only when one is not known."""
    ids = list(ids)
    lines: Mapping[tuple[str, ...], int] = {}
    if path is not None and not set(ids) <= set(known):
        try:
            lines = key_lines(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):  # gone or changed since the start
            lines = {}
    found: dict[str, list[str]] = {}
    for plugin_id in ids:
        line = lines.get((*table, plugin_id)) if plugin_id not in known else None
        found.setdefault(f"{path}:{line}" if line else where, []).append(plugin_id)
    return found


def _named(error: ConfigError, raw: Iterable[str]) -> list[str]:
    """The config keys ``error`` is about: the one its ``where`` names (``host config:
    KEY``, ``host config: KEY.sub``), each of a refusal of several keys, else every key
    given (a schema that declares none)."""
    source, _, path = (error.where or "").partition(": ")
    problems = error.details.get("problems") or []
    if source == "host config" and len(problems) > 1:
        return [p["key"] for p in problems]
    if source == "host config" and path:
        return [path.split(".")[0].split("[")[0]]
    return sorted(raw)
