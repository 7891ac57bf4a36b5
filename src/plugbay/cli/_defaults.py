"""What the options every host command shares mean when they are not given: plugins
from ./plugins, the host config from ./plugbay.toml when there is one (no command
framework here: the lean ``plugbay run`` uses them too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["config_file", "host_kwargs"]


def config_file(config: Path | None) -> Path | None:
    """``--config``, else ./plugbay.toml when there is one. Anything by that name counts
    (a directory, a broken link): the reader says what is wrong with it, where taking it
    for no file would quietly run with the default policy."""
    if config is None and os.path.lexists("plugbay.toml"):
        return Path("plugbay.toml")
    return config


def host_kwargs(plugins: list[Path] | None, state: Path, config: Path | None) -> dict[str, Any]:
    """The ``Host(...)`` arguments the common options ask for."""
    return {
        "plugins_dir": plugins or [Path("plugins")],
        "state_dir": state,
        "config_file": config_file(config),
        # 'plugbay run -p typo' starts, listing the problem in the CLI's words (docs/cli.md)
        "missing_plugins_dir": "note",
    }
