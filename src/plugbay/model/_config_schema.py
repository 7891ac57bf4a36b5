"""A plugin's config schema, as its manifest's ``[config]`` tables declare it.

:class:`ConfigSchema` validates the config a host gives a plugin before ``initialize``
(defaults filled in); every problem is a :class:`~plugbay.api.errors.ConfigError` naming
the key and what the schema expects.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from plugbay.api.errors import ConfigError

__all__ = ["ConfigField", "ConfigSchema", "check_default", "describe_field", "error_path"]

_CONFIG_TYPES: Final[dict[str, Any]] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict[str, Any],
}


@dataclass(frozen=True, slots=True)
class ConfigField:
    name: str
    type: str
    default: Any = msgspec.UNSET
    description: str = ""
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    items: str | None = None
    required: bool = False
    secret: bool = False

    @property
    def has_default(self) -> bool:
        return self.default is not msgspec.UNSET

    def python_type(self) -> Any:
        if self.type == "array":
            item_type = _CONFIG_TYPES[self.items or "string"]
            return list[item_type]  # type: ignore[valid-type]
        base = _CONFIG_TYPES[self.type]
        meta: dict[str, Any] = {}
        bound = int if self.type == "integer" else float
        if self.minimum is not None:
            meta["ge"] = bound(self.minimum)
        if self.maximum is not None:
            meta["le"] = bound(self.maximum)
        if self.type in ("string", "array"):
            if self.min_length is not None:
                meta["min_length"] = self.min_length
            if self.max_length is not None:
                meta["max_length"] = self.max_length
        if self.pattern is not None:
            meta["pattern"] = self.pattern
        if self.enum is not None:
            base = Literal[tuple(self.enum)]
        if meta:
            from typing import Annotated

            return Annotated[base, msgspec.Meta(**meta)]
        return base

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.has_default:
            out["default"] = self.default
        for key in ("description", "enum", "minimum", "maximum", "pattern", "items"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = list(value) if key == "enum" else value
        return out


class ConfigSchema:
    """A plugin's config schema from its manifest; validates config before ``initialize``."""

    __slots__ = ("_idents", "_struct", "fields", "plugin")

    def __init__(self, plugin: str, fields: Mapping[str, ConfigField]) -> None:
        self.plugin = plugin
        self.fields = dict(fields)
        spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        # config keys are kebab-case like the rest of the manifest; struct fields must be
        # identifiers, so each key gets one and msgspec renames it back on the wire
        self._idents = {
            name: f"k{i}_{re.sub(r'[^0-9a-zA-Z_]', '_', name)}"
            for i, name in enumerate(self.fields)
        }
        for f in self.fields.values():
            tp = f.python_type()
            ident = self._idents[f.name]
            if f.has_default:
                default = f.default
                if isinstance(default, (list, dict)):  # a fresh copy for every config
                    default = msgspec.field(
                        default_factory=functools.partial(copy.deepcopy, default)
                    )
                spec.append((ident, tp, default))
            elif f.required:
                spec.append((ident, tp))
            else:
                spec.append((ident, tp | None, None))
        self._struct: Any = msgspec.defstruct(
            "config",
            spec,
            forbid_unknown_fields=True,
            kw_only=True,
            rename={ident: name for name, ident in self._idents.items()},
        )

    def defaults(self) -> dict[str, Any]:
        return {f.name: f.default for f in self.fields.values() if f.has_default}

    def validate(
        self, values: Mapping[str, Any] | None, *, source: str = "config"
    ) -> dict[str, Any]:
        """The full config (defaults filled in), or :class:`ConfigError` naming the key."""
        try:
            obj = msgspec.convert(dict(values or {}), self._struct, strict=False)
        except msgspec.ValidationError as exc:
            text = str(exc)
            key = error_path(text) or (text.split("`")[1] if "`" in text else "")
            f = self.fields.get(key.split(".")[0].split("[")[0])
            if text.startswith("Object contains unknown field"):
                known = ", ".join(sorted(self.fields)) or "none"
                msg, hint = (f"unknown config key '{key}'", f"this plugin's config keys: {known}")
            elif text.startswith("Object missing required field"):
                msg = f"config key '{key}' is required and has no default"
                hint = (
                    f'set it in the host config ([plugins."{self.plugin}"] {key} = … in '
                    f"plugbay.toml) or at run time ('plugbay config {self.plugin} {key}=VALUE'); "
                    "for a version not serving yet (one to upgrade to), set it so while the "
                    "serving version runs: it is kept aside until a version declaring it serves"
                )
            else:
                msg = f"config key '{key}' is invalid: {text.split(' - at ')[0]}"
                hint = f"expected {describe_field(f)}" if f else "fix the value"
            raise ConfigError(
                msg, plugin=self.plugin, where=f"{source}: {key}", hint=hint
            ) from None
        return {name: getattr(obj, ident) for name, ident in self._idents.items()}

    def describe(self) -> dict[str, Any]:
        return {name: f.describe() for name, f in self.fields.items()}


def check_default(f: ConfigField) -> None:
    try:
        msgspec.convert(f.default, f.python_type(), strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(
            f"config key '{f.name}' is invalid: {str(exc).split(' - at ')[0]}",
            hint=f"make the default {describe_field(f)}",
        ) from None


def describe_field(f: ConfigField) -> str:
    text = f.type if f.type != "array" else f"array of {f.items or 'string'}"
    if f.enum is not None:
        text += " one of " + ", ".join(repr(e) for e in f.enum)
    if f.minimum is not None:
        text += f" >= {f.minimum:g}"
    if f.maximum is not None:
        text += f" <= {f.maximum:g}"
    if f.pattern:
        text += f" matching {f.pattern!r}"
    return text


def error_path(text: str) -> str:
    """The dotted path a msgspec validation message names (``config.level``), or ""."""
    if " - at `$" not in text:
        return ""
    return text.rsplit(" - at `$", 1)[1].rstrip("`").lstrip(".")
