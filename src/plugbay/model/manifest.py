"""Static plugin manifests: ``plugin.toml`` or ``[tool.plugbay]`` in ``pyproject.toml``.

A manifest says everything the host needs to decide whether and how to load a
plugin, and it is read without importing any plugin code (design decision 1).
Every problem is a :class:`ManifestError` naming the file, the line where we
can find it, the field, and what to write instead.

Keys are kebab-case, as in ``pyproject.toml``::

    id = "system.logging"
    version = "1.0.0"
    type = "system"
    entry = "logging_plugin:LoggingPlugin"
    capabilities = ["logging"]
    host = ">=0.1.0"

    [dependencies]
    "utility.formatters" = "^1.0"

A plugin's Python requirements (PEP 508) are ``python-dependencies = ["humanize>=4"]``
in a ``plugin.toml``, ``[project] dependencies`` of a ``pyproject.toml``, or an
installed wheel's ``Requires-Dist``; plugin-to-plugin dependencies keep their table.

    [config.level]
    type = "string"
    default = "info"
    enum = ["debug", "info", "warning", "error"]
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import msgspec

from plugbay.api.errors import ConfigError, ManifestError, PlugbayError
from plugbay.model import _events
from plugbay.model._config_schema import ConfigField, ConfigSchema, check_default, error_path
from plugbay.model._manifest_read import MAX_MANIFEST_BYTES, parse_toml, read_text, too_deep
from plugbay.model._placement import NonNegative, PlacementRequest
from plugbay.model._requirements import python_requirement_problem, with_requires_dist
from plugbay.model.versions import Range, Version

__all__ = [
    "MAX_MANIFEST_BYTES",
    "ConfigField",
    "ConfigSchema",
    "IsolationMode",
    "ManifestOrigin",
    "Permissions",
    "PluginManifest",
    "Resources",
    "load_manifest",
    "load_manifest_file",
    "manifest_from_mapping",
    "parse_manifest",
    "parse_size",
    "parse_toml",
    "python_requirement_problem",
    "with_requires_dist",
]

IsolationMode: TypeAlias = Literal["auto", "inline", "process"]
ManifestOrigin: TypeAlias = Literal["directory", "entry-point", "wheel", "memory"]

_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
_ENTRY_RE: Final = re.compile(
    r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*$"
)
_SIZE_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS: Final = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


# --------------------------------------------------------------------------- the document


class _ConfigFieldDoc(msgspec.Struct, forbid_unknown_fields=True, rename="kebab"):
    type: Literal["string", "integer", "number", "boolean", "array", "object"]
    default: Any = msgspec.UNSET
    description: str = ""
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    items: Literal["string", "integer", "number", "boolean"] | None = None
    required: bool = False
    secret: bool = False


class _ServicesDoc(msgspec.Struct, forbid_unknown_fields=True, rename="kebab"):
    provides: dict[str, str] = {}
    requires: dict[str, str] = {}
    #: services it calls when some plugin provides them (not needed to start; broker-checked)
    optional: dict[str, str] = {}


class Permissions(msgspec.Struct, forbid_unknown_fields=True, rename="kebab", frozen=True):
    """What a plugin asks to be allowed; the operator grants (deny by default)."""

    network: list[str] = []
    read: list[str] = []
    write: list[str] = []
    env: list[str] = []
    secrets: list[str] = []
    subprocess: bool = False
    #: host-internal data (``host = ["audit-read"]`` → ``host:audit-read``; ``runtime.broker``)
    host: list[str] = []

    def asked(self) -> list[str]:
        """Each permission as the operator grants it: ``network:127.0.0.1:80``, ``env:HOME``…"""
        out = [f"network:{n}" for n in self.network]
        out += [f"read:{p}" for p in self.read] + [f"write:{p}" for p in self.write]
        out += [f"env:{e}" for e in self.env] + [f"secret:{s}" for s in self.secrets]
        out += [f"host:{h}" for h in self.host]
        return [*out, "subprocess"] if self.subprocess else out


class Resources(msgspec.Struct, forbid_unknown_fields=True, rename="kebab", frozen=True):
    """Limits a plugin asks for; the host's policy caps them. Sizes accept ``"256MiB"``."""

    memory: int | str | None = None
    cpu_seconds: float | None = None
    timeout: float | None = None
    init_timeout: float | None = None
    open_files: int | None = None
    file_size: int | str | None = None
    processes: int | None = None
    threads: int | None = None
    storage: int | str | None = None
    num_cpus: NonNegative | None = None  # on Ray: reserved on its node, as are GPUs and
    num_gpus: NonNegative | None = None  # custom node resources ({"zone-b" = 1}: only such
    custom: dict[str, NonNegative] = {}  # a node takes it)


# What a manifest without the table gets: one shared (frozen) instance, not one per
# manifest. A thousand plugins would otherwise keep thousands of identical objects, each
# with its lists, and the garbage collector walks every one of them at each full pass.
# (A factory, not a default, so the manifest reference shows the table, not an object.)
_NO_RESOURCES: Final = Resources()
_NO_PERMISSIONS: Final = Permissions()
_NO_PLACEMENT: Final = PlacementRequest()


class _ManifestDoc(msgspec.Struct, forbid_unknown_fields=True, rename="kebab"):
    id: str
    version: str
    type: Literal["system", "integration", "extension", "utility"]
    entry: str
    name: str = ""
    description: str = ""
    authors: list[str] = []
    license: str = ""
    capabilities: list[str] = []
    host: str = "*"
    priority: int | None = None
    dependencies: dict[str, str] = {}
    optional_dependencies: dict[str, str] = {}
    python_dependencies: list[str] = []
    secret_parameters: list[str] = []
    services: _ServicesDoc = msgspec.field(default_factory=_ServicesDoc)
    config: dict[str, _ConfigFieldDoc] = {}
    permissions: Permissions = msgspec.field(default_factory=lambda: _NO_PERMISSIONS)
    resources: Resources = msgspec.field(default_factory=lambda: _NO_RESOURCES)
    isolation: IsolationMode = "auto"
    events: _events.EventsDoc = msgspec.field(default_factory=_events.EventsDoc)
    activation: str | list[str] = "eager"
    #: what runs the plugin: Python code (``entry = "module:Class"``) or a Wasm module
    runtime: Literal["python", "wasm"] = "python"
    #: a Wasm plugin's commands with their types (``model.wasm_commands``)
    commands: dict[str, Any] = {}
    #: how ``plugbay build`` makes a Wasm plugin's module (``model.wasm_commands``)
    wasm: dict[str, Any] = {}
    placement: PlacementRequest = msgspec.field(default_factory=lambda: _NO_PLACEMENT)


_FIELDS: Final = {
    "": [f.replace("_", "-") for f in _ManifestDoc.__struct_fields__],
    "services": ["provides", "requires"],
    "permissions": [f.replace("_", "-") for f in Permissions.__struct_fields__],
    "resources": [f.replace("_", "-") for f in Resources.__struct_fields__],
}


# --------------------------------------------------------------------------- the manifest


@dataclass(frozen=True, eq=False)
class PluginManifest:
    """A validated manifest. Ranges and versions are parsed; nothing was imported."""

    id: str
    version: Version
    type: Literal["system", "integration", "extension", "utility"]
    entry: str
    name: str = ""
    description: str = ""
    authors: tuple[str, ...] = ()
    license: str = ""
    capabilities: tuple[str, ...] = ()
    host: Range = field(default_factory=lambda: Range.parse("*"))
    priority: int | None = None
    dependencies: dict[str, Range] = field(default_factory=dict)
    optional_dependencies: dict[str, Range] = field(default_factory=dict)
    #: Python requirements (PEP 508 strings), installed in the plugin's own environment
    python_dependencies: tuple[str, ...] = ()
    #: command parameters a recording redacts: ``name`` (any command) or ``command.name``
    secret_parameters: tuple[str, ...] = ()
    provides: dict[str, Version] = field(default_factory=dict)
    requires: dict[str, Range] = field(default_factory=dict)
    #: services it uses when present ([services] optional): the broker lets it reach them
    optional_services: dict[str, Range] = field(default_factory=dict)
    config: ConfigSchema | None = None
    permissions: Permissions = field(default_factory=Permissions)
    resources: Resources = field(default_factory=Resources)
    isolation: IsolationMode = "auto"
    emits: tuple[str, ...] = ()  # these three: [events] and activation (``model._events``)
    listens: dict[str, _events.EventListen] = field(default_factory=dict)
    activation: tuple[str, ...] = ()
    placement: PlacementRequest = field(default_factory=PlacementRequest)  # the policy decides
    #: where it came from: the manifest file (None for in-memory) and the plugin's code root
    path: Path | None = None
    root: Path | None = None
    origin: ManifestOrigin = "memory"
    #: for entry-point plugins, the distribution that holds it
    distribution: str | None = None
    #: ``python`` or ``wasm`` (``entry`` is then the module's path, relative to ``root``)
    runtime: Literal["python", "wasm"] = "python"
    #: a Wasm plugin's declared commands (``model.wasm_commands.WasmCommands``), else None
    wasm: Any = None

    @property
    def key(self) -> tuple[str, Version]:
        return (self.id, self.version)

    @property
    def module(self) -> str:
        return self.entry.split(":", 1)[0]

    @property
    def attribute(self) -> str:
        return self.entry.split(":", 1)[1]

    @property
    def location(self) -> str:
        """Where to look, for messages: the file, or the distribution."""
        if self.path is not None:
            return str(self.path)
        if self.distribution:
            return f"entry point '{self.id}' of distribution {self.distribution}"
        return f"manifest of {self.id}"

    def __repr__(self) -> str:
        return f"<PluginManifest {self.id} {self.version} from {self.location}>"

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (``plugbay info --json``)."""
        return {
            "id": self.id,
            "version": str(self.version),
            "type": self.type,
            "entry": self.entry,
            "name": self.name,
            "description": self.description,
            "authors": list(self.authors),
            "license": self.license,
            "capabilities": list(self.capabilities),
            "host": str(self.host),
            "priority": self.priority,
            "dependencies": {k: str(v) for k, v in self.dependencies.items()},
            "optional-dependencies": {k: str(v) for k, v in self.optional_dependencies.items()},
            "python-dependencies": list(self.python_dependencies),
            "services": {
                "provides": {k: str(v) for k, v in self.provides.items()},
                "requires": {k: str(v) for k, v in self.requires.items()},
                "optional": {k: str(v) for k, v in self.optional_services.items()},
            },
            "config": self.config.describe() if self.config else {},
            "permissions": msgspec.to_builtins(self.permissions),
            "resources": msgspec.to_builtins(self.resources),
            "isolation": self.isolation,
            **_events.manifest_dict(self.emits, self.listens, self.activation),
            "runtime": self.runtime,
            "placement": msgspec.to_builtins(self.placement),
            "path": str(self.path) if self.path else None,
            "origin": self.origin,
        }


def parse_size(value: int | str | None, *, where: str = "size") -> int | None:
    """``"256MiB"`` → bytes. Plain numbers are bytes."""
    if value is None or isinstance(value, int):
        return value
    m = _SIZE_RE.match(value)
    if not m:
        raise ManifestError(
            f"'{value}' is not a size",
            where=where,
            hint="write bytes as a number, or a number with a unit: '512KiB', '256MiB', '1GB'",
        )
    unit = (m.group(2) or "B").lower()
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def load_manifest_file(path: str) -> PluginManifest:
    """A ``plugin.toml`` known to be a file (discovery's fast path: no extra stat)."""
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", where=path) from None
    file = Path(path)
    table = ("tool", "plugbay") if file.name == "pyproject.toml" else ()
    return parse_manifest(text, path=file, table=table, origin="directory", root=file.parent)


def load_manifest(path: Path) -> PluginManifest:
    """Read a plugin's manifest from a ``plugin.toml``, a ``pyproject.toml``, or a directory.

    Plugin code is never imported. Every problem is a :class:`ManifestError`.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("plugin.toml", "pyproject.toml"):
            if (path / name).is_file():
                return load_manifest(path / name)
        raise ManifestError(
            "no plugin.toml or pyproject.toml here",
            where=str(path),
            hint="a plugin directory needs a plugin.toml (see README: 'Write a plugin')",
        )
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", where=str(path)) from None
    table = ("tool", "plugbay") if path.name == "pyproject.toml" else ()
    return parse_manifest(text, path=path, table=table, origin="directory", root=path.parent)


def parse_manifest(
    text: str,
    *,
    path: Path | None = None,
    table: tuple[str, ...] = (),
    origin: ManifestOrigin = "memory",
    root: Path | None = None,
    distribution: str | None = None,
) -> PluginManifest:
    """Parse manifest TOML text; ``table`` selects a sub-table (``("tool", "plugbay")``)."""
    data = parse_toml(text, _where(path, distribution), what="the manifest")
    return manifest_from_document(
        data, text, path=path, table=table, origin=origin, root=root, distribution=distribution
    )


def manifest_from_document(
    data: Any,
    text: str | None,
    *,
    path: Path | None = None,
    table: tuple[str, ...] = (),
    origin: ManifestOrigin = "memory",
    root: Path | None = None,
    distribution: str | None = None,
) -> PluginManifest:
    """A parsed TOML document's manifest (``text``, when known, locates errors); the
    manifest cache (``model.manifest_cache``) keeps documents and comes back here."""
    where = _where(path, distribution)
    project = data.get("project") if table and isinstance(data, dict) else None
    for name in table:
        if not isinstance(data, dict) or name not in data:
            raise ManifestError(
                f"there is no [{'.'.join(table)}] table",
                where=where,
                hint=f"put the plugin's manifest under [{'.'.join(table)}]",
            )
        data = data[name]
    if isinstance(project, dict) and "dependencies" in project and isinstance(data, dict):
        declared = project["dependencies"]
        if not isinstance(declared, list):
            raise ManifestError(
                "[project] dependencies must be a list of PEP 508 strings",
                where=_locate(where, text, "dependencies"),
            )
        data = {**data, "python-dependencies": [*declared, *data.get("python-dependencies", [])]}
    return manifest_from_mapping(
        data, path=path, origin=origin, root=root, distribution=distribution, text=text
    )


def manifest_from_mapping(
    data: Any,
    *,
    path: Path | None = None,
    origin: ManifestOrigin = "memory",
    root: Path | None = None,
    distribution: str | None = None,
    text: str | None = None,
) -> PluginManifest:
    """Validate already-parsed manifest data (the core of every manifest source)."""
    where = _where(path, distribution)
    try:
        return _manifest_from_mapping(data, where, path, origin, root, distribution, text)
    except RecursionError:
        # msgspec and the checks below walk nested values; parse_toml bounds what a file
        # holds, but data can come from elsewhere (entry points, a wheel's metadata)
        raise too_deep(where, "the manifest") from None


def _manifest_from_mapping(
    data: Any,
    where: str,
    path: Path | None,
    origin: ManifestOrigin,
    root: Path | None,
    distribution: str | None,
    text: str | None,
) -> PluginManifest:
    doc = _decode(data, where, text)
    check = _DocChecks(doc, where, text)
    check.names()
    version = check.parse("version", doc.version, "version")
    host = check.parse("range", doc.host, "host")
    dependencies, optional_dependencies = check.dependencies()
    check.python_dependencies()
    provides, requires, optional_services = check.services()
    check.resources()
    config = check.config()
    wasm = None
    if doc.runtime == "wasm" or doc.commands or doc.wasm:
        from plugbay.model.wasm_commands import wasm_declarations

        wasm = wasm_declarations(
            doc.id, doc.runtime, doc.commands, doc.wasm, where, text, entry=doc.entry
        )
    if doc.events.emits or doc.events.listens or doc.activation != "eager":
        events = _events.check_events(doc.events, doc.activation, check.fail)
    else:
        events = {"emits": (), "listens": {}, "activation": ()}  # what it says of none
    # every field, in one dict: the dataclass's __init__ sets 32 frozen fields one
    # object.__setattr__ at a time, a third of validating a manifest
    return _built(
        {
            "id": doc.id,
            "version": version,
            "type": doc.type,
            "entry": doc.entry,
            "name": doc.name or doc.id,
            "description": doc.description,
            "authors": tuple(doc.authors),
            "license": doc.license,
            "capabilities": tuple(doc.capabilities),
            "host": host,
            "priority": doc.priority,
            "dependencies": dependencies,
            "optional_dependencies": optional_dependencies,
            "python_dependencies": tuple(doc.python_dependencies),
            "secret_parameters": tuple(doc.secret_parameters),
            "provides": provides,
            "requires": requires,
            "optional_services": optional_services,
            "config": config,
            "permissions": doc.permissions,
            "resources": doc.resources,
            "isolation": doc.isolation,
            "emits": events["emits"],
            "listens": events["listens"],
            "activation": events["activation"],
            "placement": doc.placement,
            "path": path,
            "root": root,
            "origin": origin,
            "distribution": distribution,
            "runtime": doc.runtime,
            "wasm": wasm,
        }
    )


def _built(fields: dict[str, Any]) -> PluginManifest:
    """A ``PluginManifest`` of ``fields`` (every one, checked by the tests), its
    ``__dict__`` installed whole: what ``PluginManifest(**fields)`` makes, at a sixth of
    the cost."""
    manifest = object.__new__(PluginManifest)
    object.__setattr__(manifest, "__dict__", fields)
    return manifest


def _decode(data: Any, where: str, text: str | None) -> _ManifestDoc:
    """The document's shape: keys, types and enums, as msgspec checks them."""
    try:
        return msgspec.convert(data, _ManifestDoc, strict=True)
    except msgspec.ValidationError as exc:
        raise _doc_error(str(exc), where, text) from None
    except (TypeError, ValueError) as exc:  # e.g. a non-mapping document
        raise ManifestError(f"the manifest is not a table of keys: {exc}", where=where) from None


_LIMIT_KEYS: Final = (
    "cpu_seconds",
    "timeout",
    "init_timeout",
    "open_files",
    "processes",
    "threads",
)


@dataclass(frozen=True, slots=True)
class _DocChecks:
    """The checks of a decoded manifest beyond its shape, in the order they run; each
    problem is a :class:`ManifestError` at the line that sets the key."""

    doc: _ManifestDoc
    where: str
    text: str | None

    def fail(self, msg: str, key: str, hint: str) -> ManifestError:
        return ManifestError(
            msg, plugin=self.doc.id, where=_locate(self.where, self.text, key), hint=hint
        )

    def parse(self, kind: str, value: str, key: str) -> Any:
        """A version or a range; ``key`` names it in the message."""
        try:
            return Version.parse(value) if kind == "version" else Range.parse(value)
        except PlugbayError as exc:
            # locate by the last part of the key: a dependency's id is on its own line
            raise self.fail(
                f"{key} = '{value}' is not a valid {kind}: {exc.message}",
                key.split(".", 1)[1] if key.startswith(("dependencies.", "optional-")) else key,
                exc.hint or "",
            ) from None

    def names(self) -> None:
        """The plugin's id and its entry ``module:Class``."""
        if not _ID_RE.match(self.doc.id):
            raise ManifestError(
                f"'{self.doc.id}' is not a valid plugin id",
                where=_locate(self.where, self.text, "id"),
                hint="use lower-case dotted names such as 'system.logging' or 'acme.csv-export'",
            )
        if self.doc.runtime == "wasm":
            return  # the module's path: model.wasm_commands checks it
        if not _ENTRY_RE.match(self.doc.entry):
            raise self.fail(
                f"entry '{self.doc.entry}' is not of the form 'module:Class'",
                "entry",
                'name the module and the plugin class, e.g. entry = "my_plugin:MyPlugin"',
            )

    def dependencies(self) -> tuple[dict[str, Range], dict[str, Range]]:
        """The ranges of [dependencies] and [optional-dependencies]; an id is in one only."""
        required = self._ranges("dependencies", self.doc.dependencies)
        optional = self._ranges("optional-dependencies", self.doc.optional_dependencies)
        both = required.keys() & optional.keys()
        if both:
            raise self.fail(
                f"{', '.join(sorted(both))} listed both as dependency and optional dependency",
                sorted(both)[0],
                "keep each dependency in one of the two tables",
            )
        return required, optional

    def _ranges(self, section: str, table: dict[str, str]) -> dict[str, Range]:
        ranges: dict[str, Range] = {}
        own = self.doc.id
        for dep_id, rng in table.items():
            if dep_id != own and _ID_RE.match(dep_id):
                try:
                    ranges[dep_id] = Range.parse(rng)
                    continue
                except PlugbayError:
                    pass
            ranges[dep_id] = self._dependency(section, dep_id, rng)  # raises, saying why
        return ranges

    def _dependency(self, section: str, dep_id: str, rng: str) -> Range:
        if not _ID_RE.match(dep_id):
            raise self.fail(
                f"'{dep_id}' in [{section}] is not a valid plugin id",
                dep_id,
                "dependency keys are plugin ids such as 'system.logging'",
            )
        if dep_id == self.doc.id:
            raise self.fail(
                f"the plugin depends on itself in [{section}]", dep_id, "remove that entry"
            )
        parsed: Range = self.parse("range", rng, f"{section}.{dep_id}")
        return parsed

    def python_dependencies(self) -> None:
        """Every Python requirement is PEP 508."""
        for requirement in self.doc.python_dependencies:
            problem = python_requirement_problem(requirement)
            if problem is not None:
                raise self.fail(
                    f"python-dependencies: '{requirement}' is not a PEP 508 requirement: {problem}",
                    "python-dependencies",
                    'write a package name and a version range, e.g. "humanize>=4,<5"; a URL '
                    "is written 'name @ https://…'",
                )

    def services(
        self,
    ) -> tuple[dict[str, Version], dict[str, Range], dict[str, Range]]:
        """The services it provides (versions), requires and optionally uses (ranges)."""
        services = self.doc.services
        if not (services.provides or services.requires or services.optional):
            return {}, {}, {}
        provides = {
            n: self.parse("version", v, f"services.provides.{n}")
            for n, v in services.provides.items()
        }
        requires = {
            n: self.parse("range", r, f"services.requires.{n}")
            for n, r in services.requires.items()
        }
        optional = {
            n: self.parse("range", r, f"services.optional.{n}")
            for n, r in services.optional.items()
        }
        return provides, requires, optional

    def resources(self) -> None:
        """Sizes that parse and limits that are positive (0 processes or threads: none)."""
        if self.doc.resources == _NO_RESOURCES:
            return
        for key in ("memory", "file_size", "storage"):
            try:
                parse_size(
                    getattr(self.doc.resources, key), where=f"resources.{key.replace('_', '-')}"
                )
            except ManifestError as exc:
                raise self.fail(exc.message, key.replace("_", "-"), exc.hint or "") from None
        for key in _LIMIT_KEYS:
            value = getattr(self.doc.resources, key)
            if (
                value is not None
                and value <= 0
                and not (key in ("processes", "threads") and value == 0)
            ):
                raise self.fail(
                    f"resources.{key.replace('_', '-')} must be positive", key.replace("_", "-"), ""
                )

    def config(self) -> ConfigSchema | None:
        """The [config] schema, whose defaults satisfy it; None when there is none."""
        if not self.doc.config:
            return None
        fields = {name: _config_field(name, f) for name, f in self.doc.config.items()}
        try:
            config = ConfigSchema(self.doc.id, fields)
            for spec in fields.values():
                if spec.has_default:
                    check_default(spec)
        except ConfigError as exc:
            raise self.fail(
                f"a default in [config] does not satisfy its own schema: {exc.message}",
                "config",
                exc.hint or "",
            ) from None
        except (TypeError, ValueError) as exc:
            raise self.fail(
                f"the [config] schema is invalid: {exc}", "config", "check enum, pattern and bounds"
            ) from None
        return config


def _config_field(name: str, f: _ConfigFieldDoc) -> ConfigField:
    return ConfigField(
        name=name,
        type=f.type,
        default=f.default,
        description=f.description,
        enum=tuple(f.enum) if f.enum is not None else None,
        minimum=f.minimum,
        maximum=f.maximum,
        min_length=f.min_length,
        max_length=f.max_length,
        pattern=f.pattern,
        items=f.items,
        required=f.required,
        secret=f.secret,
    )


# --------------------------------------------------------------------------- messages


def _doc_error(text: str, where: str, source: str | None) -> ManifestError:
    """A msgspec validation message about the document, said as the manifest's author
    needs it: which key, on which line, and what to write instead."""
    path = error_path(text)
    if text.startswith("Object contains unknown field"):
        key = text.split("`")[1]
        return _unknown_field(key, path, _locate(where, source, key))
    if text.startswith("Object missing required field"):
        return _missing_field(text.split("`")[1], path, where)
    key = path.rsplit(".", 1)[-1] if path else ""
    return _invalid_value(text.split(" - at ")[0], path, key, _locate(where, source, key))


def _unknown_field(key: str, section: str, where: str) -> ManifestError:
    known = _events.FIELDS.get(section) or _FIELDS.get(section.split(".")[0] if section else "", [])
    close = difflib.get_close_matches(key.replace("_", "-"), known, n=1)
    full = f"{section}.{key}" if section else key
    hint = (
        f"did you mean '{close[0]}'?"
        if close
        else (
            f"known keys{' in [' + section + ']' if section else ''}: {', '.join(known)}"
            if known
            else "remove it"
        )
    )
    return ManifestError(f"unknown field '{full}'", where=where, hint=hint)


_REQUIRED_EXAMPLES: Final = {
    "id": 'id = "acme.example"',
    "version": 'version = "1.0.0"',
    "type": 'type = "utility"  # system | integration | extension | utility',
    "entry": 'entry = "my_module:MyPlugin"',
    "type_": 'type = "string"',
}


def _missing_field(key: str, path: str, where: str) -> ManifestError:
    full = f"{path}.{key}" if path else key
    hint = (
        f"add {_REQUIRED_EXAMPLES.get(key, key + ' = …')}"
        if not path.startswith("config")
        else ('add type = "string" (or integer, number, boolean, array, object)')
    )
    return ManifestError(f"missing required field '{full}'", where=where, hint=hint)


def _invalid_value(detail: str, path: str, key: str, where: str) -> ManifestError:
    if "Invalid enum value" in detail:
        value = detail.split("'")[1] if "'" in detail else "?"
        allowed = {
            "type": "system, integration, extension, utility"
            if "." not in path
            else "string, integer, number, boolean, array, object",
            "isolation": "auto, inline, process",
        }.get(key, "")
        return ManifestError(
            f"'{value}' is not a valid {path}",
            where=where,
            hint=f"use one of: {allowed}" if allowed else "see the manifest reference in README",
        )
    return ManifestError(
        f"field '{path}' is invalid: {detail}",
        where=where,
        hint="see the manifest reference in README",
    )


def _where(path: Path | None, distribution: str | None) -> str:
    if path is not None:
        return str(path)
    return f"distribution {distribution}" if distribution else "<manifest>"


def _locate(where: str, text: str | None, key: str) -> str:
    """``file:line`` of the first line that sets ``key``, when we can find it."""
    if not text or not key:
        return where
    pattern = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=|^\s*\[[^\]]*\b{re.escape(key)}\]', re.M)
    m = pattern.search(text)
    if not m:
        return where
    return f"{where}:{text.count(chr(10), 0, m.start()) + 1}"
