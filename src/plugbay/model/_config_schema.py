"""A plugin's config schema, as its manifest's ``[config]`` tables declare it.

:class:`ConfigSchema` validates the config a host gives a plugin before ``initialize``
(defaults filled in); every problem is a :class:`~plugbay.api.errors.ConfigError` naming
the key, the value given and what the schema allows, in words (``model._config_words``).
A ``pattern`` must match the whole value (``re.fullmatch``: ``^[a-z]+$`` does not take
``"bob\\n"``, nor ``[a-z]+`` take ``"12x"``).
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
from plugbay.model._config_words import allowed, refused, together, unknown_key

__all__ = [
    "ConfigField",
    "ConfigSchema",
    "check_default",
    "error_item",
    "error_path",
    "json_schema_pattern",
]

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
    #: what ``pattern`` allows, in words, for people (an error says it, not the regex)
    pattern_hint: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not msgspec.UNSET

    def python_type(self) -> Any:
        """The type msgspec checks a value by; ValueError for limits the key's type has
        not (the manifest's check says it, naming the key)."""
        self._check_limits()
        meta: dict[str, Any] = {}
        if self.type == "array":
            item_type = _CONFIG_TYPES[self.items or "string"]
            base: Any = list[item_type]  # type: ignore[valid-type]
        else:
            base = _CONFIG_TYPES[self.type]
        bound = int if self.type == "integer" else float
        if self.type in ("string", "array"):
            if self.min_length is not None:
                meta["min_length"] = self.min_length
            if self.max_length is not None:
                meta["max_length"] = self.max_length
        if self.type != "array":  # an array's items are checked by type alone
            if self.minimum is not None:
                meta["ge"] = bound(self.minimum)
            if self.maximum is not None:
                meta["le"] = bound(self.maximum)
            if self.pattern is not None:
                meta["pattern"] = self.pattern
        if self.enum is not None:
            base = Literal[tuple(self.enum)]
        if meta:
            from typing import Annotated

            return Annotated[base, msgspec.Meta(**meta)]
        return base

    def _check_limits(self) -> None:
        if self.pattern_hint and self.pattern is None:
            raise ValueError(
                "pattern-hint says what a pattern allows, and the key has no pattern: "
                'add pattern = "…" (the regular expression the hint describes) or remove '
                "pattern-hint"
            )
        if self.type != "array":
            return
        given = [k for k in ("minimum", "maximum", "pattern") if getattr(self, k) is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} on an array is not checked (it applies to numbers and "
                "strings, not to an array's items): remove it, and check each item in the "
                "plugin's own code; min-length and max-length bound how many items the array has"
            )

    def describe(self) -> dict[str, Any]:
        """The key as every view shows it (``plugbay config`` with or without a running
        host, ``GET …/config``, the manifest in ``GET /api/v1/plugins/{id}``): ``pattern``
        as a JSON Schema validator must read it to take what the host takes
        (:func:`json_schema_pattern`), and ``pattern-written`` as the manifest has it."""
        out: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.has_default:
            out["default"] = self.default
        for key in (
            "description", "enum", "minimum", "maximum", "min_length", "max_length", "pattern",
            "pattern_hint", "items",
        ):  # fmt: skip
            value = getattr(self, key)
            if value not in (None, ""):
                out[key.replace("_", "-")] = list(value) if key == "enum" else value
        if self.pattern:
            out["pattern"] = json_schema_pattern(self.pattern)
            out["pattern-written"] = self.pattern
        return out

    def matches(self, value: Any) -> bool:
        """Whether ``value`` satisfies ``pattern`` as a whole (msgspec's own check is a
        search: it takes ``"12x"`` for ``[a-z]+`` and ``"bob\\n"`` for ``^[a-z]+$``)."""
        return (
            self.pattern is None
            or not isinstance(value, str)
            or _compiled(self.pattern).fullmatch(value) is not None
        )


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
        """The full config (defaults filled in), or :class:`ConfigError` naming the key,
        the value given and what the key allows."""
        given = dict(values or {})
        try:
            obj = msgspec.convert(given, self._struct, strict=False)
        except msgspec.ValidationError as exc:
            problems = self.problems(given, source) or [self._refusal(str(exc), given, source)]
            raise together(self.plugin, problems, source=source) from None
        config = {name: getattr(obj, ident) for name, ident in self._idents.items()}
        problems = [
            refused(self.plugin, f, given.get(name, config[name]), source=source)
            for name, f in self.fields.items()
            if not f.matches(config[name])
        ]
        if problems:
            raise together(self.plugin, problems, source=source)
        return config

    def problems(self, given: Mapping[str, Any], source: str) -> list[ConfigError]:
        """Every key of ``given`` the schema refuses, one error each, in the order given
        (then each required key missing): msgspec stops at the first, an operator wants
        to fix them all at once."""
        found: list[ConfigError] = []
        for key, value in given.items():
            f = self.fields.get(key)
            if f is None:
                found.append(unknown_key(self.plugin, key, sorted(self.fields), source=source))
                continue
            try:
                msgspec.convert(value, self._type(f), strict=False)
            except msgspec.ValidationError as exc:
                item = error_item(error_path(str(exc)))
                found.append(refused(self.plugin, f, value, item=item, source=source))
                continue
            if not f.matches(value):
                found.append(refused(self.plugin, f, value, source=source))
        missing = [f for f in self.fields.values() if f.required and not f.has_default]
        found += [self._missing(f.name, source) for f in missing if f.name not in given]
        return found

    @staticmethod
    def _type(f: ConfigField) -> Any:
        """``f``'s value type as the whole schema's struct has it (a key neither required
        nor defaulted may be null)."""
        tp = f.python_type()
        return tp if f.required or f.has_default else tp | None

    def _missing(self, key: str, source: str) -> ConfigError:
        return ConfigError(
            f"config key '{key}' is required and has no default",
            plugin=self.plugin,
            where=f"{source}: {key}",
            hint=f'set it in the host config ([plugins."{self.plugin}"] {key} = … in '
            f"plugbay.toml) or at run time ('plugbay config {self.plugin} {key}=VALUE'); "
            "for a version not serving yet (one to upgrade to), set it so while the "
            "serving version runs: it is kept aside until a version declaring it serves",
        )

    def _refusal(self, text: str, given: Mapping[str, Any], source: str) -> ConfigError:
        """The error for msgspec's ``text`` about ``given``, in the operator's words."""
        if text.startswith("Object contains unknown field"):
            key = text.split("`")[1]
            return unknown_key(self.plugin, key, sorted(self.fields), source=source)
        if text.startswith("Object missing required field"):
            return self._missing(text.split("`")[1], source)
        path = error_path(text)
        # the key is the longest one the path starts with (a key may hold a dot)
        named = max(
            (k for k in self.fields if path == k or path.startswith((f"{k}[", f"{k}."))),
            key=len,
            default=None,
        )
        if named is None:  # not a path into one key's value: say msgspec's words
            return ConfigError(f"the config is invalid: {text}", plugin=self.plugin, where=source)
        item = error_item(path[len(named) :])
        return refused(self.plugin, self.fields[named], given.get(named), item=item, source=source)

    def describe(self) -> dict[str, Any]:
        return {name: f.describe() for name, f in self.fields.items()}


def check_default(f: ConfigField) -> None:
    """:class:`ConfigError` when ``f``'s default does not satisfy ``f`` itself."""
    try:
        msgspec.convert(f.default, f.python_type(), strict=False)
    except msgspec.ValidationError:
        pass
    else:
        if f.matches(f.default):
            return
    error = refused("", f, f.default, source="default")
    raise ConfigError(error.message, hint=f"make the default {allowed(f)}") from None


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# inline flags that apply to the whole pattern, which Python takes only at its start
_GLOBAL_FLAGS: Final = re.compile(r"(?:\(\?[aiLmsux]+\))+")


def json_schema_pattern(pattern: str) -> str:
    """``pattern`` as a JSON Schema validator must read it to take exactly what
    :meth:`ConfigField.matches` takes (``re.fullmatch``): JSON Schema searches, so
    ``[a-z]+`` as written takes ``"12x"``, and ``^ab$`` in a Python validator takes
    ``"ab\\n"`` (Python's ``$`` matches before a final newline too, ECMA-262's does
    not): ``^(?:PATTERN)$(?!\\n)`` takes the whole value in both. Leading inline
    flags stay in front (Python refuses them further in); under ``(?m)`` ``^`` and
    ``$`` match at every line, so lookarounds anchor instead; under ``(?x)`` a newline
    ends a trailing comment before the closing parenthesis."""
    lead = m.group() if (m := _GLOBAL_FLAGS.match(pattern)) else ""
    body = pattern[len(lead) :] + ("\n" if "x" in lead else "")
    if "m" in lead:
        return f"{lead}(?<![\\s\\S])(?:{body})(?![\\s\\S])"
    return f"{lead}^(?:{body})$(?!\\n)"


def error_path(text: str) -> str:
    """The dotted path a msgspec validation message names (``config.level``), or ""."""
    if " - at `$" not in text:
        return ""
    return text.rsplit(" - at `$", 1)[1].rstrip("`").lstrip(".")


def error_item(path: str) -> int | None:
    """The array item a msgspec path into one value names (``[2]``, ``[2].x``), or None."""
    return int(path[1:].split("]")[0]) if path.startswith("[") else None
