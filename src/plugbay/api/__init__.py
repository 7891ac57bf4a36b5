"""What plugin authors import. Nothing here imports the host.

>>> from plugbay.api import Plugin, command, PluginContext
"""

from plugbay.api._command import (
    Command,
    CommandMethod,
    CommandSpec,
    ParamInfo,
    command,
    command_specs,
)
from plugbay.api._context import (
    MetricsCollector,
    PluginConfig,
    PluginContext,
    Secrets,
    ServiceRegistry,
)
from plugbay.api._events import Events, on_event
from plugbay.api._plugin import (
    ExtensionPlugin,
    IntegrationPlugin,
    Plugin,
    SystemPlugin,
    UtilityPlugin,
)
from plugbay.api._storage import Storage
from plugbay.api._tasks import TaskInfo, Tasks
from plugbay.api._types import (
    PLUGIN_TYPES,
    EndpointConfig,
    Environment,
    Feature,
    HookConfig,
    Message,
    PluginDependency,
    PluginType,
    SystemConfig,
    SystemEvent,
    SystemHook,
    SystemInfo,
)

__all__ = [
    "PLUGIN_TYPES",
    "Command",
    "CommandMethod",
    "CommandSpec",
    "EndpointConfig",
    "Environment",
    "Events",
    "ExtensionPlugin",
    "Feature",
    "HookConfig",
    "IntegrationPlugin",
    "Message",
    "MetricsCollector",
    "ParamInfo",
    "Plugin",
    "PluginConfig",
    "PluginContext",
    "PluginDependency",
    "PluginType",
    "Secrets",
    "ServiceRegistry",
    "Storage",
    "SystemConfig",
    "SystemEvent",
    "SystemHook",
    "SystemInfo",
    "SystemPlugin",
    "TaskInfo",
    "Tasks",
    "UtilityPlugin",
    "command",
    "command_specs",
    "on_event",
]
