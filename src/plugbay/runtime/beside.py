"""Starting another version of an active plugin beside the one serving (canary, shadow).

The version runs where the host's policy places it, like any start, with the
plugin's config; only its data directory may differ: a shadow gets a scratch
copy, so whatever it writes never reaches the live one. It is not in the
routing table and not supervised: its crash is the canary's or the shadow's
business, never the plugin's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from plugbay.api import Environment, PluginConfig, PluginContext, Secrets
from plugbay.api.errors import PlugbayError
from plugbay.isolation import PluginHandle
from plugbay.isolation.base import CallTimeout
from plugbay.model.manifest import PluginManifest
from plugbay.monitor import PluginMetrics
from plugbay.runtime.services import ServiceView

if TYPE_CHECKING:
    from plugbay.runtime.manager import PluginManager

__all__ = ["copy_data", "dispose", "start_beside"]

log = logging.getLogger("plugbay.upgrades")


async def start_beside(
    manager: PluginManager, manifest: PluginManifest, data_dir: Path
) -> PluginHandle:
    """Start and initialize ``manifest`` with ``data_dir`` as its data directory."""
    plugin_id = manifest.id
    placement = manager.place(manifest)
    config = manager.validated_config(manifest)
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    context = PluginContext(
        environment=Environment(
            host_version=manager.settings.host_version,
            plugin_id=plugin_id,
            plugin_version=str(manifest.version),
            data_dir=data_dir,
            mode=manager.settings.mode,  # type: ignore[arg-type]
            isolation=placement.isolation,
        ),
        services=ServiceView(manager.services, plugin_id, manager.broker.check_service),
        config=PluginConfig(config),
        logger=logging.getLogger(f"plugbay.plugin.{plugin_id}"),
        metrics=PluginMetrics(plugin_id),
        secrets=Secrets(placement.secrets, plugin=plugin_id, unset=placement.unset_secrets()),
    )
    environment = await asyncio.to_thread(manager.python_environment, manifest, placement)
    backend = manager.backends[placement.isolation]
    handle = await backend.start(manifest, placement, data_dir, environment)
    handle.bind(manager.budget_for(plugin_id), functools.partial(manager.broker.issued, plugin_id))
    try:
        await manager.initialize_handle(handle, manifest, context)
    except BaseException:
        await dispose(handle, manager.settings.cleanup_timeout)
        raise
    return handle


async def dispose(handle: PluginHandle, timeout: float) -> None:
    """Bounded cleanup, then forget the code; a failure is logged, never raised."""
    handle.on_crash = None
    try:
        await handle.cleanup(timeout)
    except (CallTimeout, PlugbayError, Exception) as exc:
        log.warning("cleanup of %s %s: %r", handle.manifest.id, handle.manifest.version, exc)
    handle.release()


def copy_data(live: Path, copy: Path) -> None:
    """A copy of a plugin's data directory at ``copy`` (blocking; ``copy`` is replaced).

    A sandboxed plugin's data may live in its storage image (``isolation.quota``):
    mounted at ``live`` while the plugin runs (its files are copied from there), else
    kept beside it (the image is copied, sparse, to where ``copy``'s image belongs, and
    mounted there when the copy's plugin starts). A plain directory is copied as is.
    """
    from plugbay.isolation.quota import image_path

    if copy.exists():
        shutil.rmtree(copy)
    image = image_path(live)
    if live.is_dir() and not os.path.ismount(live) and image.is_file():
        target = image_path(copy)
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["cp", "--sparse=always", str(image), str(target)], check=True, capture_output=True
        )
        shutil.copytree(live, copy, symlinks=True)  # what is beside the image (usually nothing)
    elif live.is_dir():
        shutil.copytree(live, copy, symlinks=True, ignore=shutil.ignore_patterns("lost+found"))
    else:
        copy.mkdir(parents=True)
