"""The per-plugin part of the OpenAPI document: each plugin's config body, exactly.

What ``PUT /api/v1/plugins/{id}/config`` accepts depends on the plugin: its manifest's
config schema, and the keys the host config already sets. A templated path cannot say
that, so the document has one concrete config path per known plugin instead, with
``GET`` and ``PUT`` and the plugin's own body schema (a templated path beside them
would promise, or deny, ``PUT`` for every id at once). The document is rebuilt when
the plugins change. JSON values are checked strictly: a value must already have its
type (``"5"`` is not an integer here, though the host config file's lax reading
accepts it); an integral number such as ``5.0`` is an integer, as JSON Schema says.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from plugbay.model._config_schema import error_item, error_path, json_schema_pattern
from plugbay.model._config_words import refused, together, unknown_key

if TYPE_CHECKING:
    from plugbay.model.manifest import ConfigField, ConfigSchema
    from plugbay.runtime.host import Host

__all__ = [
    "add_plugin_paths",
    "check_json_values",
    "plugins_key",
    "schema_pointer",
]

CONFIG_PATH: Final = "/api/v1/plugins/{plugin_id}/config"


def _field_type(f: ConfigField) -> Any:
    tp = f.python_type()
    # as ConfigSchema's struct: a key neither required nor defaulted may be null
    return tp if f.required or f.has_default else tp | None


def _integral(value: Any, f: ConfigField) -> Any:
    # JSON Schema counts 5.0 as an integer; so does the API
    if f.type == "integer":
        return _integral_number(value)
    if f.type == "array" and f.items == "integer" and isinstance(value, list):
        return [_integral_number(v) for v in value]
    return value


def _integral_number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_json_values(
    plugin_id: str,
    config: ConfigSchema | None,
    values: Mapping[str, Any],
    elsewhere: Collection[str] = (),
) -> dict[str, Any]:
    """``values`` when each known key's value has its type as JSON gives it (integral
    numbers made integers); ConfigError (422) if not, naming every key refused, unknown
    ones too (``elsewhere``: the keys other installed versions declare, kept aside, not
    unknown). When all have their types, the rest is for :meth:`Host.set_config`."""
    out = dict(values)
    if config is None:
        return out
    problems = []  # every key refused, in one refusal
    unknown = 0
    for key, value in values.items():
        f = config.fields.get(key)
        if f is None:
            if key not in elsewhere:
                known = sorted(config.fields)
                problems.append(unknown_key(plugin_id, key, known, source="run-time config"))
                unknown += 1
            continue
        out[key] = _integral(value, f)
        try:
            msgspec.convert(out[key], _field_type(f), strict=True)
        except msgspec.ValidationError as exc:
            item = error_item(error_path(str(exc)))  # the array's item that is wrong
            problems.append(refused(plugin_id, f, value, item=item, source="run-time config"))
            continue
        if not f.matches(out[key]):
            problems.append(refused(plugin_id, f, value, source="run-time config"))
    # unknown keys alone are for set_config, which says every other problem with them
    if len(problems) > unknown:
        raise together(plugin_id, problems, source="run-time config")
    return out


def schema_pointer(plugin_id: str) -> str:
    """Where an API client reads a plugin's config keys, for a refusal's hint."""
    return f"GET {CONFIG_PATH.replace('{plugin_id}', plugin_id)} shows the schema"


def values_schema(config: ConfigSchema | None, provided: set[str]) -> dict[str, Any]:
    """The JSON Schema of ``values`` for a plugin: its keys, their types and limits;
    required are the keys that must be set and nothing else sets."""
    if config is None or not config.fields:
        return {
            "type": "object",
            "maxProperties": 0,
            "description": "This plugin declares no config: only {} is accepted.",
        }
    properties = {
        name: _anchored(msgspec.json.schema(_field_type(f))) for name, f in config.fields.items()
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = sorted(
        name
        for name, f in config.fields.items()
        if f.required and not f.has_default and name not in provided
    )
    if required:
        schema["required"] = required
    return schema


def _anchored(schema: Any) -> Any:
    """``schema`` with each ``pattern`` made to match the whole value, as the host's check
    does (``fullmatch``): JSON Schema reads a pattern as a search, so ``[a-z]+`` as
    written would let a client take ``"12x"`` that the host then refuses
    (:func:`~plugbay.model._config_schema.json_schema_pattern`)."""
    if isinstance(schema, list):
        return [_anchored(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        k: json_schema_pattern(v) if k == "pattern" and isinstance(v, str) else _anchored(v)
        for k, v in schema.items()
    }


def plugins_key(host: Host) -> tuple[Any, ...]:
    """What the per-plugin paths depend on: which plugins, in which versions."""
    return tuple(
        (r.id, str(r.manifest.version) if r.manifest else None, id(r.manifest))
        for r in host.plugins()
    )


def add_plugin_paths(doc: dict[str, Any], host: Host) -> dict[str, Any]:
    """``doc`` with the templated config path replaced by one exact path per plugin."""
    doc = copy.deepcopy(doc)
    paths = doc["paths"]
    templated = paths.pop(CONFIG_PATH)
    put, get = templated["put"], templated["get"]
    for rec in host.plugins():
        config = rec.manifest.config if rec.manifest else None
        concrete: dict[str, Any] = {}
        for method, operation in (("get", get), ("put", put)):
            op = copy.deepcopy(operation)
            op["operationId"] = f"{operation['operationId']}__{rec.id}"
            op["parameters"] = [p for p in op.get("parameters", []) if p["name"] != "plugin_id"]
            if not op["parameters"]:
                del op["parameters"]
            concrete[method] = op
        body = concrete["put"]["requestBody"]["content"]["application/json"]
        body["schema"] = {
            "type": "object",
            "properties": {"values": values_schema(config, host.config_provided(rec.id))},
            "required": ["values"],
            "additionalProperties": False,
        }
        concrete["put"]["summary"] = f"Change {rec.id}'s run-time config"
        paths[CONFIG_PATH.replace("{plugin_id}", rec.id)] = concrete
    return doc
