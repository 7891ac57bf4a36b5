"""The manifest reference (``docs/manifest.md``), generated from the manifest model.

Every key, its type, whether it is required and its default come from the msgspec
structs that parse a manifest (:mod:`plugbay.model.manifest`); only the meaning of
each key is written here, in :data:`MEANING`. A key the model has and this table does
not explain is an error (:func:`undocumented`), so the reference cannot fall behind
the model. ``make docs`` writes the file; a test checks it equals what this module
generates::

    python -m plugbay.pdk.manifest_reference > docs/manifest.md
"""

from __future__ import annotations

import sys
from typing import Final

import msgspec
from msgspec import inspect

from plugbay.model import manifest

__all__ = ["MEANING", "generate", "manifest_keys", "undocumented"]

#: what each key means, by its dotted path (``config.*`` is one field of a config table)
MEANING: Final[dict[str, str]] = {
    "id": "Dotted lower-case name, its owner's then the plugin's, unique among plugins: "
    "`system.logging`, `acme.greeter`. An id without a dot (`formatter`) still loads, but "
    "another author's plugin of that name would collide with it: `plugbay new` refuses one "
    "and `plugbay validate` warns at its line, with the form to write (`acme.formatter`).",
    "version": "The plugin's version, SemVer 2.0.0 (`1.2.0`, `2.0.0-rc.1`).",
    "type": "The spec's plugin type; the entry class must implement its interface.",
    "entry": "`module:Class`, relative to the plugin's directory (or an importable module "
    "for an installed package).",
    "name": "A name for people (the dashboard, `plugbay info`).",
    "description": "One sentence for people.",
    "authors": "For people.",
    "license": "An SPDX expression, for people.",
    "capabilities": "Free-form words other plugins and operators can search for.",
    "host": "The plugbay versions it runs on, a version range (npm or PEP 440 syntax).",
    "priority": "System plugins: lower hears system events first.",
    "dependencies": "Plugin id → version range. Started before it; a call to one of its "
    "commands is allowed by the broker. A bundled plugin (`utility.formatters`, …) is "
    "found by id alone.",
    "optional-dependencies": "Plugin id → version range: started first when present and "
    "compatible, otherwise skipped with a note.",
    "python-dependencies": "Python requirements (PEP 508), installed into the plugin's "
    "own environment ([environments](environments.md)). In a `pyproject.toml`: "
    "`[project] dependencies`.",
    "secret-parameters": "Command parameters a recording redacts: `name` (any command) or "
    "`command.name` ([upgrades](upgrades.md)).",
    "services": "Services by name and version: what it provides to others and what it "
    "needs from them (`context.services.require`).",
    "services.provides": "Service name → the SemVer version it provides (its commands "
    "are the service).",
    "services.requires": "Service name → range it needs; it does not start without it.",
    "services.optional": "Service name → range it uses when some plugin provides it.",
    "config": "The config schema: one table per key (`[config.KEY]`). The config is "
    "checked against it before `initialize`; `context.config[KEY]` reads it.",
    "config.*.type": "The value's JSON type.",
    "config.*.default": "Used when nobody sets the key; checked against the schema.",
    "config.*.description": "For people (`plugbay docs`, the dashboard's config form).",
    "config.*.enum": "The only values allowed.",
    "config.*.minimum": "Numbers: the smallest value allowed (refused on an array: its items "
    "are checked by type alone).",
    "config.*.maximum": "Numbers: the largest value allowed (refused on an array).",
    "config.*.min-length": "Strings and arrays: the shortest length allowed.",
    "config.*.max-length": "Strings and arrays: the longest length allowed.",
    "config.*.pattern": "Strings: a regular expression the whole value must match (refused on "
    "an array; the API's published schema has it anchored, `^(?:PATTERN)$(?!\\n)`, so a "
    "JSON Schema validator takes what the host takes).",
    "config.*.pattern-hint": "Strings: what `pattern` allows, in words, completing "
    '"VALUE is not …" (`"an ICAO code: four capital letters"`): a refused value\'s error '
    "says it instead of the regular expression. Refused without a `pattern`.",
    "config.*.items": "Arrays: the type of every item.",
    "config.*.required": "It has no default: the plugin does not start until the config sets it.",
    "config.*.secret": "Shown as `***` by `plugbay info`, the API and the dashboard.",
    "events": "Plugin events it sends and hears ([plugin authors](plugin-authors.md), "
    "section 10). System events (`host.*`, `plugin.*`, `security.*`) stay with system "
    "plugins' `on_system_event`.",
    "events.emits": "The event names it may send with `context.events.emit`; the host "
    "refuses any other (`PermissionDenied`).",
    "events.listens": 'Event name → how it hears it (`[events.listens."cache.evicted"]`, '
    "handled by an `@on_event` method): `priority` (lower hears it first, default 100), "
    "`queue` (at most this many wait for it, default 100), `overflow` when full "
    "(`drop-oldest`, `drop-newest`, or `block`: the sender waits `block-timeout` seconds, "
    "default 1.0, then the new one is dropped; a Wasm module does not wait, its event "
    "waits in the host).",
    "activation": "When it starts: `eager` (with the host), `on-call` (its first call) or "
    "`on-event:NAME` (its first `NAME` event, or first call); until then `plugbay list` "
    "shows it `on-demand`, 'installed, starts on demand'.",
    "permissions": "What it asks to be allowed; in effect only once the operator grants "
    "it (`plugbay grant ID PERMISSION`). Deny by default.",
    "permissions.network": "`ADDRESS:PORT` it connects to (`network:ADDRESS:PORT`), an IP "
    "address and a port: a sandbox allows a connection by its port, so a plugin asking for "
    "one without a port (`127.0.0.1:*`) or naming a host (`example.org:443`) is not loaded "
    "sandboxed (`plugbay validate` warns; it only notes it when the manifest asks for "
    '`isolation = "inline"`, a plugin that by design runs trusted).',
    "permissions.read": "Paths it reads outside its code (`read:PATH`).",
    "permissions.write": "Paths it writes outside its data directory (`write:PATH`).",
    "permissions.env": "Host environment variables it sees (`env:NAME`).",
    "permissions.secrets": "Secrets it reads with `context.secrets.get(NAME)` (`secret:NAME`).",
    "permissions.subprocess": "It runs programs (`subprocess`).",
    "permissions.host": "Host data: `audit-read`, `audit-write`, `logs-read`, "
    "`state-read`, `metrics-read` (`host:audit-read`, …).",
    "resources": "Limits it asks for; the operator's policy gives defaults and caps them.",
    "resources.memory": 'Memory of its worker: bytes or a size (`"256MiB"`).',
    "resources.cpu-seconds": "CPU time of its worker, in seconds.",
    "resources.timeout": "Seconds one call may take (per command: `@command(timeout=…)`).",
    "resources.init-timeout": "Seconds `initialize` may take.",
    "resources.open-files": "Descriptors its worker may hold open.",
    "resources.file-size": "The largest file it may write: bytes or a size.",
    "resources.processes": "Processes its worker may have (with `subprocess` granted).",
    "resources.threads": "Threads its worker may run.",
    "resources.num-cpus": "On a Ray cluster: CPUs reserved on the node it runs on (may be 0).",
    "resources.num-gpus": "On a Ray cluster: GPUs reserved on the node it runs on.",
    "resources.custom": (
        'On a Ray cluster: custom node resources it needs (`{ "zone-b" = 1 }`); '
        "it runs only on a node that has them."
    ),
    "placement": ("Where it asks to run; the operator's policy decides (see docs/scale-out.md)."),
    "placement.backend": (
        "`auto` (the policy chooses), `local` (this machine) or `ray` (a node of the "
        "host's Ray cluster)."
    ),
    "placement.node-labels": ('Ray node labels the node must carry (`{ zone = "b" }`).'),
    "resources.storage": "The storage quota, bytes or a size: a sandboxed plugin's data "
    "directory is an image of this size (at least 2 MiB); a Wasm plugin's `context.storage` "
    "takes at most half of it; an inline plugin has none "
    "([storage quota](storage-and-denials.md)).",
    "runtime": "`python`, or `wasm`: `entry` is then a `.wasm` module (or component) and "
    "`[commands.NAME]` declare its typed commands ([WebAssembly plugins](wasm-plugins.md)).",
    "commands": "A Wasm plugin's commands, `[commands.NAME]`: parameters and result with their "
    "types, checked at the host's boundary ([WebAssembly plugins](wasm-plugins.md)).",
    "wasm": "How `plugbay build` makes a Wasm plugin's module from its sources "
    "([WebAssembly plugins](wasm-plugins.md)).",
    "isolation": "Where it asks to run; the host's policy has the last word (an untrusted "
    "plugin never runs `inline`).",
}


def _type(t: inspect.Type) -> str:
    if isinstance(t, inspect.StrType):
        return "string"
    if isinstance(t, inspect.IntType):
        return "integer"
    if isinstance(t, inspect.FloatType):
        return "number"
    if isinstance(t, inspect.BoolType):
        return "boolean"
    if isinstance(t, inspect.AnyType):
        return "any"
    if isinstance(t, inspect.LiteralType):
        return " \\| ".join(f'`"{v}"`' for v in sorted(t.values, key=str))
    if isinstance(t, inspect.ListType):
        return f"array of {_type(t.item_type)}"
    if isinstance(t, inspect.DictType):
        return f"table of {_type(t.value_type)}"
    if isinstance(t, inspect.StructType):
        return "table"
    if isinstance(t, inspect.UnionType):
        return " or ".join(_type(u) for u in t.types if not isinstance(u, inspect.NoneType))
    return type(t).__name__  # pragma: no cover - a new kind of field: shown as is


def _default(field: inspect.Field) -> str:
    if field.required:
        return "**required**"
    if field.default is not msgspec.NODEFAULT and field.default not in (None, ""):
        return f"`{msgspec.json.encode(field.default).decode()}`"
    return ""


def _struct_of(t: inspect.Type) -> inspect.StructType | None:
    if isinstance(t, inspect.StructType):
        return t
    if isinstance(t, inspect.DictType) and isinstance(t.value_type, inspect.StructType):
        return t.value_type
    return None


def manifest_keys() -> list[tuple[str, inspect.Field]]:
    """Every key of the manifest model by its dotted path, in the model's order."""
    out: list[tuple[str, inspect.Field]] = []
    model = inspect.type_info(manifest._ManifestDoc)
    assert isinstance(model, inspect.StructType)
    for field in model.fields:
        out.append((field.encode_name, field))
        inner = _struct_of(field.type)
        if inner is not None:
            prefix = (
                f"{field.encode_name}.*"
                if isinstance(field.type, inspect.DictType)
                else (field.encode_name)
            )
            out += [(f"{prefix}.{sub.encode_name}", sub) for sub in inner.fields]
    return out


def undocumented() -> list[str]:
    """Keys of the model that :data:`MEANING` does not explain (should be none)."""
    return [path for path, _ in manifest_keys() if path not in MEANING]


def _row(path: str, field: inspect.Field) -> str:
    meaning = MEANING.get(path, "")
    return f"| `{path}` | {_type(field.type)} | {_default(field)} | {meaning} |"


def generate() -> str:
    """The whole reference page, as markdown."""
    missing = undocumented()
    if missing:
        raise KeyError(f"manifest keys without a meaning in MEANING: {', '.join(missing)}")
    lines = [
        "# Manifest reference",
        "",
        "<!-- generated by `python -m plugbay.pdk.manifest_reference` from the manifest model"
        " (plugbay.model.manifest); edit the model or that module, not this file -->",
        "",
        "A manifest is `plugin.toml` beside the plugin's code, or the same keys under "
        "`[tool.plugbay]` in a plugin package's `pyproject.toml` (found through the "
        "`plugbay.plugins` entry-point group). Keys are kebab-case; an unknown key is an "
        "error naming the closest known one. It is read without running any plugin code.",
        "",
        "A complete example (the test suite validates it with the manifest model):",
        "",
        "```toml",
        EXAMPLE.strip(),
        "```",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    lines += [_row(path, field) for path, field in manifest_keys()]
    lines += [
        "",
        "Version ranges take npm syntax (`^1.2.3`, `~1.2`, `1.x`, `*`, `>=1.2 <2`, "
        "`1.2 - 2.3`, `a || b`) or PEP 440 specifiers (`>=1,<2`, `~=1.4`, `==1.*`). A "
        "spelling valid in both, such as `>1.0`, means what pip means unless it has "
        "npm-only syntax; `plugbay validate` warns where the two readings differ "
        "([version ranges](version-ranges.md)).",
        "",
        "Config values come, lowest precedence first, from the manifest defaults, the host "
        'config file (`plugbay.toml`, `[plugins."acme.greeter"]` tables), the state store '
        "(the API's `PUT /api/v1/plugins/{id}/config`), and `Host(config=...)`. A value "
        "the schema refuses is refused naming the key, the value given (never a `secret` "
        "key's) and what the key allows, in words: `config key 'units' is invalid: "
        '"kelvin" is not one of "metric", "imperial"`; a `pattern` in its `pattern-hint`\'s '
        "words when it has one. One attempt that gets several keys wrong is refused once, "
        "naming each of them in those words (`details.problems` of the error: each one's "
        "`key`, `message`, `where` and `hint`).",
        "",
    ]
    return "\n".join(lines)


EXAMPLE: Final = """
id = "acme.weather"
version = "1.2.0"
type = "integration"
entry = "weather:Weather"
name = "Weather"
description = "Today's forecast from a local weather station."
authors = ["Ada <ada@example.org>"]
license = "MIT"
capabilities = ["forecast"]
host = ">=0.1.0 <1.0.0"
isolation = "process"
python-dependencies = []

[dependencies]
"utility.formatters" = "^1.2"

[optional-dependencies]
"system.logging" = "^1.0"

[services]
provides = { forecast = "1.0.0" }
requires = { formatting = "^1.0" }

[config.station]
type = "string"
default = "EGLL"
pattern = "^[A-Z]{4}$"
pattern-hint = "an ICAO code: four capital letters"
description = "ICAO code of the station."

[config.units]
type = "string"
default = "metric"
enum = ["metric", "imperial"]

[config.api-key]
type = "string"
default = ""
secret = true

[permissions]
network = ["127.0.0.1:8080"]
secrets = ["weather-key"]

[resources]
memory = "128MiB"
timeout = 5.0
storage = "16MiB"
"""


def main(argv: list[str] | None = None) -> int:
    sys.stdout.write(generate())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
