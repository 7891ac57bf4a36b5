"""The operator's isolation policy: where each plugin runs, with which limits and grants.

The host decides, never the plugin:

* a plugin runs **inline** (in the host's process) only when the operator trusts
  it: the bundled ``core/`` plugins (a ``core`` folder directly inside one of the
  host's plugin directories), or an id matched by ``[policy] inline`` in the host
  config. ``isolation = "inline"`` in an untrusted manifest is ignored, with a note;
* everything else runs in a **sandboxed worker** (``isolation.limits``: every
  kernel layer), as does a trusted plugin that asks for ``isolation = "process"``;
* a limit is what the manifest's ``[resources]`` asks for, else the policy's
  default, and never more than the policy's cap;
* a permission is effective only when the manifest asks for it **and** the
  operator granted it (host config ``[policy.grants]`` or ``plugbay grant``).

The host config (``plugbay.toml``) carries it::

    [policy]
    inline = ["acme.trusted-*"]        # fnmatch patterns of plugin ids
    trust-core = true
    [policy.limits]                     # caps on what a manifest may ask
    memory = "1GiB"
    [policy.defaults]                   # when the manifest asks nothing
    memory = "256MiB"
    [policy.grants]
    "acme.weather" = ["network:127.0.0.1:8080", "secret:api-key"]
    [secrets]                           # or PLUGBAY_SECRET_<NAME> in the host's environment
    api-key = "..."
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from plugbay.api._context import SECRET_ENV_PREFIX, secret_of_env
from plugbay.api.errors import ConfigError, PlugbayError
from plugbay.isolation import _cgroups
from plugbay.isolation.limit_sources import LimitSource, limit_and_source
from plugbay.isolation.network_grants import network_refusal
from plugbay.isolation.ray_settings import RaySettings, place_on_ray
from plugbay.model.host_config import no_unknown_keys, read_host_config, require_signed
from plugbay.model.manifest import PluginManifest, parse_size
from plugbay.monitor.bounds import Bounds, bounds_from_config

__all__ = [
    "HOST_PERMISSIONS",
    "LIMIT_KEYS",
    "IsolationPolicy",
    "Placement",
    "covers",
    "grant_refusal",
    "in_effect",
    "is_permission",
    "permission_forms",
    "read_host_config",
]

MiB: Final = 1 << 20

#: every permission to host-internal data, and what it allows (the broker enforces them)
HOST_PERMISSIONS: Final[Mapping[str, str]] = {
    "host:audit-read": "read the audit trail (core.security: trail, verify)",
    "host:audit-write": "add entries to the audit trail (core.security: record), in its own name",
    "host:logs-read": "read every plugin's logs (the logging service, system.logging)",
    "host:state-read": "read the host's state: every plugin's record (the plugbay.host service)",
    "host:metrics-read": "read the host's health and alerts (plugbay.host: health, alerts)",
}


#: every limit, as the manifest's [resources] spells it, with its default and its cap
LIMIT_KEYS: Final = (
    "memory", "cpu-seconds", "timeout", "open-files", "file-size",
    "processes", "threads", "storage",
)  # fmt: skip
_DEFAULTS: Final[dict[str, float | None]] = {
    "memory": 256 * MiB,
    "cpu-seconds": None,
    "timeout": None,  # the host's call timeout
    "open-files": 64,
    "file-size": 64 * MiB,
    "processes": 0,
    "threads": 8,
    "storage": 256 * MiB,
}
_CAPS: Final[dict[str, float | None]] = {
    "memory": 2048 * MiB,
    "cpu-seconds": None,
    "timeout": None,  # the host's max call timeout
    "open-files": 1024,
    "file-size": 1024 * MiB,
    "processes": 16,
    "threads": 64,
    "storage": 4096 * MiB,
}
_SIZES: Final = frozenset({"memory", "file-size", "storage"})


@dataclass(frozen=True)
class Placement:
    """Where one plugin runs and under what: what ``plugbay info`` shows."""

    isolation: str  # "inline", "process", "wasm" or "ray"
    reason: str
    sandboxed: bool
    limits: dict[str, float | None] = field(default_factory=dict)
    asked: tuple[str, ...] = ()
    granted: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    #: granted secrets' values, by name (never shown)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    environment: dict[str, str] = field(default_factory=dict)
    #: on Ray: "mode" ("actor": bare, "agent": the node agent's worker) and the resources
    #: the cluster reserves for it (``isolation.ray_settings``); empty elsewhere
    ray: dict[str, Any] = field(default_factory=dict)
    #: where each limit was set (``isolation.limit_sources``): what "set by …" reads
    sources: dict[str, LimitSource] = field(default_factory=dict, repr=False)

    def describe(self) -> dict[str, Any]:
        return {
            "isolation": self.isolation,
            "sandboxed": self.sandboxed,
            "reason": self.reason,
            "limits": dict(self.limits),
            "permissions": {
                "asked": list(self.asked),
                "granted": list(self.granted),
                "effective": list(self.effective),
                # asked and not granted: the diff the operator approves ('plugbay grant')
                "pending": [p for p in self.asked if p not in self.effective],
            },
            "secrets": sorted(self.secrets),
            "environment": sorted(self.environment),
            **({"ray": dict(self.ray)} if self.ray else {}),
        }

    def unset_secrets(self) -> list[str]:
        """The secrets in effect that have no value on this host (neither ``[secrets]``
        nor ``PLUGBAY_SECRET_<NAME>``): the plugin's ask for one is answered as such."""
        return [n for n in _granted(self.effective, "secret:") if n not in self.secrets]

    def rules(self) -> dict[str, Any]:
        """What the worker's guard allows (``isolation.guard``)."""
        return {
            "allow_exec": "subprocess" in self.effective,
            "processes": int(self.limits.get("processes") or 0),
            "network": [p.partition(":")[2] for p in self.effective if p.startswith("network:")],
            "storage": _int(self.limits.get("storage")),
            # where Landlock lets it read and write beyond its code and data directory:
            # an EACCES there is the file's own permissions (the guard's words say so)
            "reads": _granted(self.effective, "read:"),
            "writes": _granted(self.effective, "write:"),
        }

    def sandbox_request(self, manifest: PluginManifest, data_dir: Path) -> dict[str, Any]:
        """The zygote's request: the ``SandboxPolicy`` fields and the worker's cgroup."""
        code = manifest.root or (manifest.path.parent if manifest.path else None)
        if code is None:
            raise PlugbayError(
                "a plugin without files on disk cannot be sandboxed",
                plugin=manifest.id,
                hint="install it as a directory or a package",
            )
        _refuse_unenforceable_network(manifest, self.effective)
        reads = [os.path.realpath(code)]
        if manifest.origin == "entry-point":
            # an installed package is imported by name: its import path must be listable
            reads.append(os.path.realpath(Path(code).parent))
        reads += _granted(self.effective, "read:")
        writes = [os.path.realpath(data_dir), "/dev/null", *_granted(self.effective, "write:")]
        limits = self.limits
        exec_ok = "subprocess" in self.effective
        processes = int(limits.get("processes") or 0) if exec_ok else 0
        return {
            "cgroup": _cgroups.worker_name(manifest.id),  # names its host: swept if it dies
            "policy": {
                "memory_bytes": _int(limits.get("memory")),
                "cpu_seconds": _int(limits.get("cpu-seconds")),
                "open_files": _int(limits.get("open-files")),
                "file_size_bytes": _int(limits.get("file-size")),
                "processes": processes,
                "threads": _int(limits.get("threads")),
                "cpu_cores": 1.0,
                "read_paths": [p for p in reads if os.path.isabs(p)],
                "write_paths": [p for p in writes if os.path.isabs(p)],
                "network": [n for n in _granted(self.effective, "network:") if _enforceable(n)],
                "allow_exec": exec_ok,
                "allow_kill_others": False,
                "environment": sorted(self.environment.items()),
            },
        }


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _granted(effective: Iterable[str], kind: str) -> list[str]:
    """What the effective permissions of ``kind`` (``read:``, ``write:``, ``network:``) name."""
    return [p.partition(":")[2] for p in effective if p.startswith(kind)]


def _named(effective: Iterable[str], kind: str, values: Mapping[str, str]) -> dict[str, str]:
    """The values the effective permissions of ``kind`` (``secret:``, ``env:``) name, of
    those that exist."""
    return {name: values[name] for name in _granted(effective, kind) if name in values}


def _where_it_runs(manifest: PluginManifest, trust: str | None) -> tuple[str, bool, str]:
    """(isolation, sandboxed, reason): a trusted plugin runs inline unless its manifest
    asks for a worker; any other runs sandboxed in a worker, whatever it asks; a Wasm
    module runs in its own store (``isolation.wasm``), trusted or not."""
    if manifest.runtime == "wasm":  # a module has no way out but what the host gives it
        return "wasm", True, "a WebAssembly module: its own store, deny by default"
    if trust is not None and manifest.isolation != "process":
        return "inline", False, trust
    if trust is not None:
        return "process", False, f"{trust}; runs in a worker of its own as its manifest asks"
    reason = "not trusted by the host's policy: deny by default"
    if manifest.isolation == "inline":
        reason += "; its manifest asks for inline, which only the operator can allow"
    return "process", True, reason


def _enforceable(grant: str) -> bool:
    _, _, port = grant.rpartition(":")
    return port.isdigit()


def _refuse_unenforceable_network(manifest: PluginManifest, effective: Iterable[str]) -> None:
    """A sandboxed plugin asking for, or granted, a network destination without a port
    (``127.0.0.1:*``) or naming a host (``example.org:443``) is refused as it loads: no
    layer of its sandbox could honour it (``isolation.network_grants``), and it would
    learn so only from refused connections."""
    asked = [f"network:{n}" for n in manifest.permissions.network]
    granted = [p for p in effective if p.startswith("network:")]
    for grant in dict.fromkeys([*asked, *granted]):
        refusal = network_refusal(grant)
        if refusal is not None:
            where = (
                f"[permissions] network in {manifest.path or 'its manifest'}"
                if grant in asked
                else "granted to it ('plugbay info' says where: revoke it)"
            )
            message, hint = f"{refusal[0]} ({where}); it is not loaded sandboxed", refusal[1]
            if manifest.isolation == "inline":  # what it asked for first: the grant follows
                message = (
                    f'it asks to run inline (isolation = "inline" in its manifest), but the '
                    f"host's policy does not trust it, so it runs sandboxed, where its {message}"
                )
                hint = (
                    f'to run it inline, trust it: inline = ["{manifest.id}"] under [policy] '
                    f"in the host's config file (plugbay.toml); else {hint}"
                )
            raise ConfigError(message, plugin=manifest.id, hint=hint, details={"permission": grant})


@dataclass(frozen=True)
class IsolationPolicy:
    """See the module docstring. ``IsolationPolicy()`` is the deny-by-default policy."""

    inline: tuple[str, ...] = ()
    trust_core: bool = True
    defaults: Mapping[str, float | None] = field(default_factory=lambda: dict(_DEFAULTS))
    caps: Mapping[str, float | None] = field(default_factory=lambda: dict(_CAPS))
    grants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: what each plugin may make the host keep (``[policy.bounds]``; ``monitor.bounds``)
    bounds: Bounds = field(default_factory=Bounds)
    plugin_bounds: Mapping[str, Bounds] = field(default_factory=dict)
    #: the cluster plugins may be placed on (``[ray]``; None: every plugin runs here)
    ray: RaySettings | None = None
    #: the flight recorder's opt-in (``[policy] record``, ``record-calls``; read by
    #: ``runtime.trials``): the id patterns recorded from the start, and how many calls
    #: each recording keeps (None: the recorder's default)
    record: tuple[str, ...] = ()
    record_calls: int | None = None
    #: where it was read: the host config file's absolute path, or what gave it
    #: (what says where a ``[policy.grants]`` grant comes from)
    origin: str = "the host config"

    def bounds_for(self, plugin_id: str) -> Bounds:
        """The plugin's own bounds (``[policy.bounds.plugins."ID"]``), else the defaults."""
        return self.plugin_bounds.get(plugin_id, self.bounds)

    @classmethod
    def from_config(
        cls,
        data: Mapping[str, Any],
        *,
        where: str = "host config",
        inline: Iterable[str] = (),
    ) -> IsolationPolicy:
        """Read ``[policy]`` and ``[secrets]`` of the host config; every mistake is a ConfigError."""
        # [policy] is a table, and require-signed a bool, in the words the signature check
        # of 'plugbay install' (plugbay.pdk.signing) uses: every command refuses it alike
        require_signed(data, where)
        table = data.get("policy", {})
        # require-signed: installing only signed wheels (read by plugbay.pdk.signing)
        known = {
            "inline", "trust-core", "limits", "defaults", "grants", "require-signed", "bounds",
            "record", "record-calls",
        }  # fmt: skip
        no_unknown_keys(table, known, "[policy]", where)
        patterns = [*_strings(table.get("inline", []), "[policy] inline", where), *inline]
        trust_core = table.get("trust-core", True)
        if not isinstance(trust_core, bool):
            raise ConfigError(
                f"[policy] trust-core must be true or false, not {trust_core!r}",
                where=where,
                hint="write trust-core = true (bundled core/ plugins run inline) or false",
            )
        defaults = dict(_DEFAULTS) | _limits(table.get("defaults", {}), "defaults", where)
        caps = dict(_CAPS) | _limits(table.get("limits", {}), "limits", where)
        grants_table = table.get("grants", {})
        if not isinstance(grants_table, Mapping):
            raise ConfigError("[policy.grants] must map plugin ids to lists", where=where)
        grants = {
            str(pid): tuple(_permissions(perms, f"[policy.grants] {pid!r}", where))
            for pid, perms in grants_table.items()
        }
        secrets = {
            secret_of_env(key): value
            for key, value in os.environ.items()
            if key.startswith(SECRET_ENV_PREFIX)
        }
        secrets |= _secrets(data.get("secrets", {}), where)
        bounds, plugin_bounds = bounds_from_config(table.get("bounds", {}), where=where)
        ray = RaySettings.from_config(data.get("ray"), where=where)
        record, record_calls = _recording(table, where)
        return cls(
            tuple(patterns), trust_core, defaults, caps, grants, secrets, bounds, plugin_bounds, ray,
            record, record_calls, origin=str(Path(where).resolve()) if Path(where).is_file() else where,
        )  # fmt: skip

    @classmethod
    def from_file(cls, path: Path | None) -> IsolationPolicy:
        """The policy of the host config file at ``path`` (None: the defaults), read as the
        host reads it: a file that cannot be read or is wrong is a ConfigError naming it."""
        if path is None:
            return cls.from_config({})
        return cls.from_config(read_host_config(path), where=str(path))

    # ------------------------------------------------------------------ decisions

    def trusted(self, manifest: PluginManifest, plugin_dirs: Sequence[Path]) -> str | None:
        """Why the operator trusts this plugin to run inline, or None."""
        for pattern in self.inline:
            if fnmatch.fnmatchcase(manifest.id, pattern):
                return f"trusted by the host policy (inline = {pattern!r})"
        root = manifest.root
        if self.trust_core and root is not None and manifest.origin == "directory":
            parent = root.resolve().parent
            if parent.name == "core" and parent.parent in {d.resolve() for d in plugin_dirs}:
                return f"a bundled core plugin ({parent})"
        return None

    def place(
        self,
        manifest: PluginManifest,
        plugin_dirs: Sequence[Path],
        granted: Iterable[str] = (),
        host_environment: Mapping[str, str] | None = None,
    ) -> Placement:
        asked = tuple(manifest.permissions.asked())
        all_granted = tuple(dict.fromkeys([*self.grants.get(manifest.id, ()), *granted]))
        trust = self.trusted(manifest, plugin_dirs)
        effective = in_effect(asked, all_granted, trusted=trust is not None)
        secrets = _named(effective, "secret:", self.secrets)
        env_source = os.environ if host_environment is None else host_environment
        environment = _named(effective, "env:", env_source)
        isolation, sandboxed, reason = _where_it_runs(manifest, trust)
        limits, sources = self.limits_and_sources(manifest)
        placement = Placement(
            isolation=isolation,
            reason=reason,
            sandboxed=sandboxed,
            limits=limits,
            asked=asked,
            granted=all_granted,
            effective=effective,
            secrets=secrets,
            environment=environment,
            sources=sources,
        )
        return place_on_ray(placement, manifest, self.ray)

    def limits_for(self, manifest: PluginManifest) -> dict[str, float | None]:
        """Each limit: what the manifest asks, else the default, capped by the policy."""
        return self.limits_and_sources(manifest)[0]

    def limits_and_sources(
        self, manifest: PluginManifest
    ) -> tuple[dict[str, float | None], dict[str, LimitSource]]:
        """:meth:`limits_for`, and where each limit was set (``isolation.limit_sources``)."""
        res = manifest.resources
        asked: dict[str, float | None] = {
            "memory": parse_size(res.memory, where=f"{manifest.location} resources.memory"),
            "cpu-seconds": res.cpu_seconds,
            "timeout": res.timeout,
            "open-files": res.open_files,
            "file-size": parse_size(
                res.file_size, where=f"{manifest.location} resources.file-size"
            ),
            "processes": res.processes,
            "threads": res.threads,
            "storage": parse_size(res.storage, where=f"{manifest.location} resources.storage"),
        }
        written = {"memory": res.memory, "file-size": res.file_size, "storage": res.storage}
        out: dict[str, float | None] = {}
        sources: dict[str, LimitSource] = {}
        for key in LIMIT_KEYS:
            out[key], sources[key] = limit_and_source(
                key, asked[key], written.get(key, asked[key]), self.defaults, self.caps
            )
        # file-size is not clamped to the storage quota here: the kernel enforces the quota
        # on every file (isolation.quota); only where it is sampled does the process
        # backend keep one file from outgrowing it
        return out, sources


def in_effect(asked: Iterable[str], granted: Sequence[str], *, trusted: bool) -> tuple[str, ...]:
    """What is in effect of what a manifest asks for: what a grant covers, and, for a
    plugin whose code the operator trusts (inline), the ``host:*`` permissions it asks
    for: trusting its code grants what it asks of host data."""
    return tuple(
        p
        for p in asked
        if any(covers(g, p) for g in granted) or (trusted and p.startswith("host:"))
    )


def covers(grant: str, asked: str) -> bool:
    """Whether ``grant`` allows what ``asked`` names: the same permission, or a grant of
    a directory (``read:``, ``write:``) for a request beneath it."""
    if grant == asked:
        return True
    kind, _, what = asked.partition(":")
    g_kind, _, g_what = grant.partition(":")
    return (
        g_kind == kind and kind in ("read", "write") and what.startswith(g_what.rstrip("/") + "/")
    )


def _recording(table: Mapping[str, Any], where: str) -> tuple[tuple[str, ...], int | None]:
    """``[policy] record`` (plugin id patterns) and ``record-calls`` (calls kept)."""
    raw = table.get("record", [])
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(
            "[policy] record must be a list of plugin id patterns, not " + repr(raw),
            where=where,
            hint='write record = ["acme.*"]: the plugins whose calls are recorded from the start',
        )
    calls = table.get("record-calls")
    if calls is not None and (not isinstance(calls, int) or isinstance(calls, bool) or calls < 1):
        raise ConfigError(
            f"[policy] record-calls must be a whole number of calls, 1 or more, not {calls!r}",
            where=where,
            hint="write record-calls = 1000 (the calls each recording keeps), or leave it out",
        )
    return tuple(raw), calls


def _secrets(table: Any, where: str) -> dict[str, str]:
    """``[secrets]``: names to strings. A number, a list or a table would reach the plugin
    as its Python spelling (``"{'a': 1}"``): refused, naming the key."""
    if not isinstance(table, Mapping):
        raise ConfigError(
            "[secrets] must be a table of names to strings",
            where=where,
            hint='write it as a [secrets] section of lines like api-key = "..."',
        )
    for key, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(
                f"[secrets] {key} must be a string, not {value!r}",
                where=where,
                hint=f'quote the value: {key} = "..." (a secret reaches the plugin as text)',
            )
    return {str(k): v for k, v in table.items()}


def _strings(value: Any, what: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of strings", where=where)
    return list(value)


def permission_forms() -> tuple[str, ...]:
    """The forms a permission is written in (``plugbay grant``, ``[policy.grants]``)."""
    return (*HOST_PERMISSIONS, "network:HOST:PORT", "read:PATH", "write:PATH", "env:NAME",
            "secret:NAME", "subprocess")  # fmt: skip


def is_permission(text: str) -> bool:
    """Whether ``text`` is written as a permission (see :func:`permission_forms`)."""
    kind, _, rest = text.partition(":")
    return (
        (kind == "subprocess" and not rest)
        or (kind in ("network", "read", "write", "env", "secret") and bool(rest))
        or text in HOST_PERMISSIONS
    )


def grant_refusal(permission: str, *, granting: bool = True) -> tuple[str, str] | None:
    """(message, hint) when ``permission`` cannot be granted: it is not written as a
    permission (granted, it would match nothing, without a word), or, ``granting``, it is
    a network grant without a port or naming a host rather than an IP address (no
    sandbox could honour it: ``isolation.network_grants``); None when it can. ``plugbay
    grant``, ``Host.grant`` and ``[policy.grants]`` ask it alike (a revoke only the
    first)."""
    if not is_permission(permission):
        return f"'{permission}' is not a permission", "write one of: " + ", ".join(
            permission_forms()
        )
    if granting and permission.startswith("network:"):
        return network_refusal(permission)
    return None


def _permissions(value: Any, what: str, where: str) -> list[str]:
    """A list of permissions; one that cannot be granted is a ConfigError."""
    for permission in (found := _strings(value, what, where)):
        refusal = grant_refusal(permission)
        if refusal is not None:
            raise ConfigError(f"{what}: {refusal[0]}", where=where, hint=refusal[1])
    return found


def _limits(value: Any, what: str, where: str) -> dict[str, float | None]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"[policy.{what}] must be a table", where=where)
    out: dict[str, float | None] = {}
    for key, raw in value.items():
        if key not in LIMIT_KEYS:
            raise ConfigError(
                f"[policy.{what}] has no limit '{key}'",
                where=where,
                hint=f"limits: {', '.join(LIMIT_KEYS)}",
            )
        try:
            number = parse_size(raw, where=where) if key in _SIZES else raw
        except PlugbayError as exc:
            raise ConfigError(f"[policy.{what}] {key}: {exc.message}", where=where) from None
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int | float) or number < 0
        ):
            raise ConfigError(
                f"[policy.{what}] {key} must be a number >= 0, not {raw!r}", where=where
            )
        out[key] = number
    return out
