"""Python environments no plugin version uses any more go, and with them what uv's cache
keeps of their packages.

``plugbay uninstall`` removes the environments only the removed versions used
(:func:`after_uninstall`); ``plugbay env gc`` every environment no plugin version in the
plugin directories or the store uses (:func:`reclaim`; beside a running host, that host
does it, :func:`collect`, so what it runs keeps its environment and the warm zygote of a
removed one stops). An environment's files are hard
links to uv's cache (``<state>/envs/.cache``), so removing the environment alone gives back
almost nothing: the packages no remaining environment holds are dropped from the cache too
(``uv cache clean NAME…``). A package a remaining environment holds stays cached, so a new
environment still shares its files; an offline install of a dropped one needs its wheel in
a ``--find-links`` directory again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugbay.api.errors import PlugbayError
from plugbay.runtime.environments import EnvironmentStore, Package, _locked, _uv_bin

if TYPE_CHECKING:
    from plugbay.model.manifest import PluginManifest
    from plugbay.runtime.host import Host

__all__ = ["Reclaimed", "after_uninstall", "collect", "reclaim"]

log = logging.getLogger("plugbay.environments")


@dataclasses.dataclass(frozen=True)
class Reclaimed:
    """What a clean-up removed: environments, packages dropped from uv's cache, and the
    disk that came back (allocated blocks, each file counted once however many links)."""

    removed: list[Path] = dataclasses.field(default_factory=list)
    packages: list[str] = dataclasses.field(default_factory=list)
    freed_bytes: int = 0

    def answer(self) -> dict[str, Any]:
        """What ``plugbay uninstall`` answers of it (``environments``, ``freed_bytes``)."""
        return {"environments": [str(p) for p in self.removed], "freed_bytes": self.freed_bytes}


def reclaim(
    envs: EnvironmentStore, keep: Iterable[str], *, only: Iterable[str] | None = None
) -> Reclaimed:
    """Remove the environments whose key is not in ``keep``: of ``only`` when given (the
    environments a removed plugin version used), else every one, with the leftovers
    :meth:`EnvironmentStore.gc` removes; then the packages of uv's cache no remaining
    environment holds."""
    if not envs.root.is_dir():
        return Reclaimed()
    keep = set(keep)
    with _locked(envs.root / ".lock"):  # no build meanwhile: it would use what goes
        before = _allocated(envs.root)
        held = {env.key: _names(env.packages()) for env in envs.environments()}
        if only is None:
            removed = envs.gc(keep)
        else:
            removed = [envs.root / k for k in sorted(set(only) - keep) if k in held]
            for path in removed:
                shutil.rmtree(path, ignore_errors=True)
        gone = {p.name for p in removed}
        stay = set().union(*(names for key, names in held.items() if key not in gone))
        unused = sorted(set().union(*(held.get(key, set()) for key in gone)) - stay)
        dropped = _drop_cached(envs, unused)
        freed = max(0, before - _allocated(envs.root))
    return Reclaimed(removed, dropped, freed)


async def after_uninstall(host: Host, removed: Iterable[PluginManifest]) -> Reclaimed:
    """The environments of the uninstalled versions that no plugin version the host still
    knows uses (its plugin directories, entry points, the store's installed and kept
    versions), with what uv's cache keeps of their packages; the zygote each ran, if
    any, stops."""
    envs = host.manager.environments
    if envs is None:
        return Reclaimed()
    mine = _keys(envs, removed)
    if not mine:
        return Reclaimed()
    done = await asyncio.to_thread(reclaim, envs, _keys(envs, _known(host)), only=mine)
    await _forget(host, done.removed)
    return done


async def collect(host: Host, keep: Iterable[str]) -> Reclaimed:
    """``plugbay env gc`` beside a running host, done by that host: every environment
    neither ``keep`` (what the command found in use: its plugin directories, the store)
    nor a plugin version the host knows uses goes, with what uv's cache keeps of its
    packages; the zygote each ran, if any, stops."""
    envs = host.manager.environments
    if envs is None:
        return Reclaimed()
    done = await asyncio.to_thread(reclaim, envs, {*keep, *_keys(envs, _known(host))})
    await _forget(host, done.removed)
    return done


def _known(host: Host) -> list[PluginManifest]:
    """Every plugin version the host knows: its plugin directories, entry points, the
    store's installed and kept versions."""
    known = list(host.registry.manifests())
    if host.store is not None:
        known += host.store.discover().manifests
    return known


async def _forget(host: Host, removed: Iterable[Path]) -> None:
    """A warm zygote of a removed environment would run on until the host stops."""
    for path in removed:
        for backend in host.manager.backends.values():
            await backend.forget_environment(path)


def _keys(envs: EnvironmentStore, manifests: Iterable[PluginManifest]) -> set[str]:
    """The environments these plugin versions use (whichever way the policy runs them:
    an environment kept for nothing is better than one taken from a plugin)."""
    keys: set[str] = set()
    for manifest in manifests:
        if not manifest.python_dependencies:
            continue
        try:
            reqs = envs.requirements_of(manifest)
        except PlugbayError:
            continue  # it cannot have an environment
        if reqs:
            keys.add(envs.path_for(reqs).name)
    return keys


def _names(packages: Iterable[Package]) -> set[str]:
    from packaging.utils import canonicalize_name

    return {str(canonicalize_name(p.name)) for p in packages}


def _drop_cached(envs: EnvironmentStore, names: list[str]) -> list[str]:
    """``uv cache clean NAME…`` in the store's cache; the names dropped (none when uv
    could not: the environments are gone all the same, and the next clean-up tries again)."""
    if not names or not envs.cache.is_dir():
        return []
    env = {**os.environ, "UV_CACHE_DIR": str(envs.cache), "UV_NO_CONFIG": "1", "NO_COLOR": "1"}
    try:
        done = subprocess.run(
            [_uv_bin(), "cache", "clean", *names],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not drop %s from uv's cache in %s: %s", names, envs.cache, exc)
        return []
    if done.returncode != 0:
        log.warning("could not drop %s from uv's cache in %s: %s", names, envs.cache,
                    done.stderr.strip())  # fmt: skip
        return []
    return names


def _allocated(root: Path) -> int:
    """Bytes allocated under ``root``, each file once however many hard links it has."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total
