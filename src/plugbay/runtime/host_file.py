"""The host config file (``plugbay.toml``) read and checked as a host's start reads it.

``Host`` reads its config file here when it opens, and ``plugbay doctor`` checks one
here, so a table that ``plugbay run`` refuses (``[policy]`` with ``[secrets]``,
``[python]``, ``[monitor]``, ``[plugins]`` not a table) is refused by both, in the same
words, naming the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from plugbay.api.errors import ConfigError
from plugbay.isolation.policy import IsolationPolicy
from plugbay.model.host_config import read_host_config
from plugbay.monitor.config import monitor_table
from plugbay.runtime.environments import IndexSettings

__all__ = ["HostFile", "read_host_file"]


@dataclasses.dataclass(frozen=True)
class HostFile:
    """What a host takes from its config file (``None``: not read, the host was given it)."""

    policy: IsolationPolicy | None
    python_index: IndexSettings | None
    #: ``[monitor]`` as written (``MonitorSettings.from_config`` reads it)
    monitor: dict[str, Any]
    #: ``[plugins."ID"]``: each plugin's config values
    plugins: dict[str, dict[str, Any]]


def read_host_file(
    path: Path, *, inline: Iterable[str] = (), policy: bool = True, python_index: bool = True
) -> HostFile:
    """The host config at ``path`` checked table by table, or :class:`ConfigError` naming
    the file; ``policy`` and ``python_index`` false leave those tables out (a host given
    its own)."""
    where = str(path)
    data = read_host_config(path)
    return HostFile(
        IsolationPolicy.from_config(data, where=where, inline=inline) if policy else None,
        IndexSettings.from_config(data, where=where, base=path.resolve().parent)
        if python_index
        else None,
        monitor_table(data, where=where),
        _plugins_table(data, where),
    )


def _plugins_table(data: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ConfigError(
            "[plugins] must be a table of plugin ids",
            where=where,
            hint='give each plugin its own table of config values: [plugins."acme.calc"] '
            'then greeting = "Hi" on the next line',
        )
    return {k: dict(v) for k, v in plugins.items() if isinstance(v, dict)}
