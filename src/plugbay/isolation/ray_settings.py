"""The host's ``[ray]`` settings, and where the policy puts a plugin on Ray (no Ray import).

The host config names the cluster and which plugins go there::

    [ray]
    address = "local"        # "local": a private cluster of this host's own;
                             # "auto": whatever cluster runs on this machine (Ray
                             # looks for it); or "HOST:PORT"
    plugins = ["acme.*"]     # ids placed on Ray (a manifest's [placement] backend = "ray" too)
    bare-actors = true       # a trusted plugin runs as a bare actor (no sandbox)
    listen = "127.0.0.1"     # the host's address as the cluster's nodes reach it
    object-store = "96MiB"   # "local" only: its object store
    num-cpus = 2             # "local" only: CPUs it offers (default: the machine's)
    start-timeout = 60       # seconds a plugin may wait for a node with its resources

A plugin goes on Ray when ``[ray]`` is set and its id matches ``plugins`` or its
manifest's ``[placement] backend = "ray"``; ``backend = "local"`` keeps it here
unless the operator names it in ``plugins``. Trust does not change with the
place: a plugin the policy trusts may run as a bare actor; any other runs in a
sandboxed worker that the node's plugbay agent forks (``isolation.ray``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import ConfigError, PlugbayError
from plugbay.model._toml_lines import key_line
from plugbay.model.host_config import no_unknown_keys
from plugbay.model.manifest import PluginManifest, parse_size

if TYPE_CHECKING:
    from plugbay.isolation.policy import Placement

__all__ = ["RaySettings", "place_on_ray"]

_KEYS = {
    "address", "plugins", "bare-actors", "listen", "object-store", "num-cpus", "start-timeout",
    "temp-dir",
}  # fmt: skip


@dataclass(frozen=True)
class RaySettings:
    """``[ray]`` of the host config (see the module docstring)."""

    address: str = "local"
    plugins: tuple[str, ...] = ()
    bare_actors: bool = True
    listen: str = "127.0.0.1"
    object_store_bytes: int = 96 << 20
    num_cpus: int | None = None
    start_timeout: float = 60.0
    #: "local" only: where its sockets and logs go (None: a short new one under /tmp)
    temp_dir: str | None = None
    #: the file its table came from (said with a mistake in it, e.g. a ``listen`` not here)
    origin: str = dataclasses.field(default="host config", compare=False)

    @classmethod
    def from_config(cls, table: Any, *, where: str = "host config") -> RaySettings | None:
        """``[ray]``, or None when the config has none; every mistake is a ConfigError."""
        if table is None:
            return None
        if not isinstance(table, Mapping):
            raise ConfigError("[ray] must be a table", where=where)
        no_unknown_keys(table, _KEYS, "[ray]", where)
        return cls(
            address=_address(table.get("address", "local"), where),
            plugins=_patterns(table.get("plugins", []), where),
            bare_actors=_flag(table.get("bare-actors", True), "bare-actors", where),
            listen=_listen(table.get("listen", "127.0.0.1"), where),
            object_store_bytes=_store(table.get("object-store", 96 << 20), where),
            num_cpus=_cpus(table.get("num-cpus"), where),
            start_timeout=_seconds(table.get("start-timeout", 60.0), where),
            temp_dir=_temp_dir(table.get("temp-dir"), where),
            origin=where,
        )

    def wants(self, manifest: PluginManifest) -> str | None:
        """Why this plugin goes on Ray, or None when it stays on this machine."""
        for pattern in self.plugins:
            if fnmatch.fnmatchcase(manifest.id, pattern):
                return f"placed on Ray by the host ([ray] plugins = {pattern!r})"
        if manifest.placement.backend == "ray":
            return 'placed on Ray as its manifest asks ([placement] backend = "ray")'
        return None


def _refused(key: str, wanted: str, value: Any, where: str, example: str) -> ConfigError:
    """``[ray] key`` refused: what it must be, the value as written, its ``FILE:LINE``, and
    an example to write instead."""
    shown = str(value).lower() if isinstance(value, bool) else repr(value)  # TOML's words
    return ConfigError(
        f"[ray] {key} must be {wanted}, not {shown}",
        where=_line_of(where, key),
        hint=f"write {key} = {example} under [ray]",
    )


def _line_of(where: str, key: str) -> str:
    """``FILE:LINE`` setting ``[ray] key`` in the host config file ``where``, else ``where``
    (a table not read from a file). Read again only for a refusal."""
    try:
        text = Path(where).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return where
    line = key_line(text, ("ray", key))
    return f"{where}:{line}" if line else where


def _address(value: Any, where: str) -> str:
    if not isinstance(value, str) or (value not in ("local", "auto") and ":" not in value):
        raise _refused("address", '"local", "auto" or "HOST:PORT"', value, where, '"10.0.0.5:6379"')
    return value


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise _refused("plugins", "a list of plugin id patterns", value, where, '["acme.*"]')
    return tuple(value)


def _flag(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise _refused(key, "true or false", value, where, "true (unquoted)")
    return value


def _listen(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _refused("listen", "the host's address (a string)", value, where, '"127.0.0.1"')
    return value


def _store(value: Any, where: str) -> int:
    example = '"96MiB" (a number and a unit: KiB, MiB, GiB; a plain number is bytes)'
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _refused("object-store", "a size", value, where, example)
    try:
        size = parse_size(value, where=where)
    except PlugbayError:
        raise _refused("object-store", "a size", value, where, example) from None
    if size is not None and size <= 0:
        raise _refused("object-store", "a size > 0", value, where, example)
    return int(size or (96 << 20))


def _cpus(value: Any, where: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise _refused("num-cpus", "a whole number >= 1", value, where, "2")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _refused("start-timeout", "a number of seconds > 0", value, where, "60")
    return float(value)


def _temp_dir(value: Any, where: str) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 40):
        raise _refused(
            "temp-dir",
            "a short path (at most 40 characters: Unix socket paths under it are limited "
            "to 107 bytes)",
            value,
            where,
            '"/tmp/pbray"',
        )
    return value


def place_on_ray(
    placement: Placement, manifest: PluginManifest, settings: RaySettings | None
) -> Placement:
    """The policy's placement moved onto Ray when the host sends it there: a trusted
    plugin as a bare actor (when ``bare-actors``), any other in a sandboxed worker of the
    node's agent. Its limits and permissions are the same as on this machine."""
    if settings is None:
        if manifest.placement.backend == "ray":
            reason = f"{placement.reason}; its manifest asks for Ray, and this host has no [ray]"
            return dataclasses.replace(placement, reason=reason)
        return placement
    why = settings.wants(manifest)
    if why is None:
        return placement
    if placement.isolation == "wasm":  # a Wasm module runs in the host's Wasm runtime
        reason = f"{placement.reason}; not on Ray: a Wasm plugin runs on the Wasm backend"
        return dataclasses.replace(placement, reason=reason)
    trusted = not placement.sandboxed
    if trusted and settings.bare_actors:
        mode, sandboxed = "actor", False
        reason = f"{why}, as a bare actor (no sandbox): {placement.reason}"
    elif trusted:
        mode, sandboxed = "agent", False
        reason = f"{why}, in a worker of its node's plugbay agent ([ray] bare-actors = false)"
    else:
        mode, sandboxed = "agent", True
        reason = f"{why}, in a sandboxed worker of its node's plugbay agent: {placement.reason}"
    res = manifest.resources
    memory = parse_size(res.memory, where=f"{manifest.location} resources.memory")
    return dataclasses.replace(
        placement,
        isolation="ray",
        sandboxed=sandboxed,
        reason=reason,
        ray={
            "mode": mode,
            "num_cpus": float(res.num_cpus or 0),
            "num_gpus": float(res.num_gpus or 0),
            # Ray reserves what the manifest asks for itself, not the policy's default
            "memory": int(memory) if memory else None,
            "resources": dict(res.custom),
            "labels": dict(manifest.placement.node_labels),
        },
    )
