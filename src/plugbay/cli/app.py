"""The ``plugbay`` command: one typer app, its commands filed by group.

Every command that needs plugins asks the host serving the state directory
(``./.plugbay`` unless ``--state``/``PLUGBAY_STATE``) through its API, or starts
one in this process on the plugins directory (``./plugins`` unless ``--plugins``
or ``PLUGBAY_PLUGINS`` says otherwise). Errors print one paragraph (what, where,
what to do) and exit non-zero: 1 for a failure, 2 for a usage error.
"""

from __future__ import annotations

import typer

from plugbay.cli import config as config_cli
from plugbay.cli import (
    develop,
    env,
    index,
    monitor,
    nodes,
    plugins,
    policy,
    profiling,
    run,
    system_events,
    upgrades,
    versions,
    web,
)
from plugbay.cli import state as state_cli
from plugbay.cli import uninstall as uninstall_cli
from plugbay.cli._usage import PlugbayGroup

__all__ = ["app", "main"]

app = typer.Typer(
    name="plugbay",
    cls=PlugbayGroup,  # with --json, a usage error answers in JSON too
    help="A plugin host for Python applications: load plugins safely, see why one cannot load, "
    "call their commands.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# the order of the help panels: run a host, its plugins, their versions, what they may do,
# how they fare, the API, then the tools for plugin authors
run.register(app)
plugins.register(app)
versions.register(app)
upgrades.register(app)
index.register(app)
uninstall_cli.register(app)
config_cli.register(app)
policy.register(app)
monitor.register(app)
system_events.register(app, monitor.PANEL)
nodes.register(app)
web.register(app)
develop.register(app)
env.register(app)
state_cli.register(app)
profiling.register(app, develop.PANEL)  # the profiler is a develop tool


def main() -> None:
    app()
