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

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import msgspec

from plugbay.api.errors import ConfigError, ManifestError, PlugbayError
from plugbay.model import _events
from plugbay.model._config_schema import ConfigField, ConfigSchema, check_default
from plugbay.model._manifest_errors import (
    Shape,
    doc_error,
    id_problem,
    locate,
    shape_problems,
    where_of,
)
from plugbay.model._manifest_read import (
    MAX_MANIFEST_BYTES,
    parse_toml,
    read_text,
    too_deep,
    unreadable,
)
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
    "is_dotted_id",
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

# \Z, not $: "$" also matches before a final newline, and "acme.x\n" is not an id
_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*\Z")


def is_dotted_id(plugin_id: str) -> bool:
    """Whether ``plugin_id`` is a valid id that names its owner, then the plugin
    (``system.logging``, ``acme.csv-export``): the form ``plugbay new`` creates and
    ``plugbay validate`` asks for. A valid id without a dot still loads, so that plugins
    installed before the rule keep working; ``plugbay validate`` warns about one."""
    return "." in plugin_id and _ID_RE.match(plugin_id) is not None


_ENTRY_RE: Final = re.compile(
    r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*\Z"
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
    pattern_hint: str = ""
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
        raise unreadable(path, exc) from None
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
        raise unreadable(str(path), exc) from None
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
    data = parse_toml(text, where_of(path, distribution), what="the manifest")
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
    data = manifest_table(data, text, where_of(path, distribution), table)
    return manifest_from_mapping(
        data,
        path=path,
        origin=origin,
        root=root,
        distribution=distribution,
        text=text,
        table=table,
    )


def manifest_table(data: Any, text: str | None, where: str, table: tuple[str, ...]) -> Any:
    """The manifest's table of a parsed document (``table``: ``("tool", "plugbay")`` in a
    ``pyproject.toml``, whose ``[project] dependencies`` it takes as its Python ones)."""
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
                where=locate(where, text, ("project", "dependencies")),
                details={"key": ["python-dependencies"]},
            )
        data = {**data, "python-dependencies": [*declared, *data.get("python-dependencies", [])]}
    return data


def manifest_from_mapping(
    data: Any,
    *,
    path: Path | None = None,
    origin: ManifestOrigin = "memory",
    root: Path | None = None,
    distribution: str | None = None,
    text: str | None = None,
    table: tuple[str, ...] = (),
) -> PluginManifest:
    """Validate already-parsed manifest data (the core of every manifest source); ``text``
    and ``table``, when known, say where in a file a problem is. Each problem is a
    :class:`ManifestError` whose ``details["key"]`` is the path of the key it is about,
    when it is about one."""
    where = where_of(path, distribution)
    try:
        return _manifest_from_mapping(data, where, path, origin, root, distribution, text, table)
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
    table: tuple[str, ...],
) -> PluginManifest:
    doc = _decode(data, where, text, table)
    check = _DocChecks(doc, where, text, table)
    check.names()
    version = check.parse("version", doc.version, ("version",))
    host = check.parse("range", doc.host, ("host",))
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
        events = _events.check_events(doc.events, doc.activation, check.fail_in_events)
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


def manifest_shape(data: Any, where: str, text: str | None, table: tuple[str, ...]) -> Shape:
    """Every key of a manifest's table that does not fit the manifest's document (its
    unknown keys, values of the wrong type, missing keys), not only the first."""
    return shape_problems(data, _ManifestDoc, where, text, table)


def _decode(data: Any, where: str, text: str | None, table: tuple[str, ...]) -> _ManifestDoc:
    """The document's shape: keys, types and enums, as msgspec checks them (its first
    problem worded by ``shape_problems``, which names the entry of a table of tables)."""
    try:
        return msgspec.convert(data, _ManifestDoc, strict=True)
    except msgspec.ValidationError as exc:
        found = shape_problems(data, _ManifestDoc, where, text, table).problems
        raise (found[0] if found else doc_error(str(exc), where, text)) from None
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
    table: tuple[str, ...] = ()

    def fail(self, msg: str, key: str | tuple[str, ...], hint: str) -> ManifestError:
        """The problem with ``key`` (a path, or one key of the manifest's table)."""
        path = (key,) if isinstance(key, str) else key
        return ManifestError(
            msg,
            plugin=self.doc.id if _ID_RE.match(self.doc.id) else None,
            where=locate(self.where, self.text, key, self.table),
            hint=hint,
            details={"key": list(path)},
        )

    def fail_in_events(self, msg: str, key: str, hint: str) -> ManifestError:
        """A problem ``model._events`` finds (at ``key``, an event or a listener's key):
        about ``[events]``, or about ``activation``."""
        error = self.fail(msg, key, hint)
        error.details["key"] = ["activation" if key == "activation" else "events"]
        return error

    def parse(self, kind: str, value: str, key: tuple[str, ...]) -> Any:
        """A version or a range at ``key``, which names it in the message."""
        try:
            return Version.parse(value) if kind == "version" else Range.parse(value)
        except PlugbayError as exc:
            raise self.fail(
                f"{'.'.join(key)} = '{value}' is not a valid {kind}: {exc.message}",
                key,
                exc.hint or "",
            ) from None

    def names(self) -> None:
        """The plugin's id and its entry ``module:Class``."""
        if not _ID_RE.match(self.doc.id):
            raise self.fail(
                f"{self.doc.id!a} is not a valid plugin id: {id_problem(self.doc.id)}",
                "id",
                "use lower-case ASCII dotted names such as 'system.logging' or 'acme.csv-export'",
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
                ("dependencies", sorted(both)[0]),
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
                f"{dep_id!a} in [{section}] is not a valid plugin id: {id_problem(dep_id)}",
                (section, dep_id),
                "dependency keys are plugin ids such as 'system.logging'",
            )
        if dep_id == self.doc.id:
            raise self.fail(
                f"the plugin depends on itself in [{section}]",
                (section, dep_id),
                "remove that entry",
            )
        parsed: Range = self.parse("range", rng, (section, dep_id))
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
            n: self.parse("version", v, ("services", "provides", n))
            for n, v in services.provides.items()
        }
        requires = {
            n: self.parse("range", r, ("services", "requires", n))
            for n, r in services.requires.items()
        }
        optional = {
            n: self.parse("range", r, ("services", "optional", n))
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
                raise self.fail(
                    exc.message, ("resources", key.replace("_", "-")), exc.hint or ""
                ) from None
        for key in _LIMIT_KEYS:
            value = getattr(self.doc.resources, key)
            if (
                value is not None
                and value <= 0
                and not (key in ("processes", "threads") and value == 0)
            ):
                name = key.replace("_", "-")
                raise self.fail(f"resources.{name} must be positive", ("resources", name), "")

    def config(self) -> ConfigSchema | None:
        """The [config] schema, whose defaults satisfy it; None when there is none."""
        if not self.doc.config:
            return None
        fields = {name: _config_field(name, f) for name, f in self.doc.config.items()}
        try:
            config = ConfigSchema(self.doc.id, fields)
        except (TypeError, ValueError, re.error) as exc:
            raise self._schema_error(fields, exc) from None
        for spec in fields.values():
            if spec.has_default:
                try:
                    check_default(spec)
                except ConfigError as exc:
                    raise self.fail(
                        f"a default in [config] does not satisfy its own schema: {exc.message}",
                        ("config", spec.name, "default"),
                        exc.hint or "",
                    ) from None
        return config

    def _schema_error(self, fields: dict[str, ConfigField], exc: Exception) -> ManifestError:
        """What is wrong with the [config] schema, at the entry (and key) that makes it so."""
        for name, spec in fields.items():
            try:
                ConfigSchema(self.doc.id, {name: spec})
            except (TypeError, ValueError, re.error) as alone:
                bad_pattern = isinstance(alone, re.error)
                return self.fail(
                    f"config key '{name}' has an invalid schema: "
                    + (
                        f"pattern is not a regular expression: {alone}"
                        if bad_pattern
                        else str(alone)
                    ),
                    ("config", name, "pattern") if bad_pattern else ("config", name),
                    "check enum, pattern and bounds",
                )
        return self.fail(
            f"the [config] schema is invalid: {exc}", ("config",), "check enum, pattern and bounds"
        )


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
        pattern_hint=f.pattern_hint,
        items=f.items,
        required=f.required,
        secret=f.secret,
    )
