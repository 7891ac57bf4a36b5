"""The spec's ``PDK`` and ``DevTools`` interfaces, as one object over the PDK's modules.

from plugbay.pdk.kit import PDK
pdk = PDK()
path = pdk.create_plugin("utility", "acme.greeter", Path("acme-greeter"))
result = pdk.validate_plugin(path)        # pdk.tools.analyzer
built = pdk.build_plugin(path)            # pdk.tools.compiler
docs = pdk.generate_docs(path)            # pdk.documentation
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugbay.pdk.analyzer import ValidationResult, validate_plugin
from plugbay.pdk.build import BuildResult, build_plugin
from plugbay.pdk.debug import debug_plugin
from plugbay.pdk.docs import Documentation, generate_docs
from plugbay.pdk.templates import TEMPLATES, PluginTemplate, create_plugin
from plugbay.pdk.testing import PluginHost

__all__ = ["PDK", "DevTools"]


@dataclass(frozen=True, slots=True)
class DevTools:
    """The spec's ``DevTools``. The profiler is the monitoring issue's (``plugbay profile``)."""

    compiler: Callable[..., BuildResult] = build_plugin
    debugger: Callable[..., Any] = debug_plugin
    analyzer: Callable[..., ValidationResult] = validate_plugin
    profiler: Callable[..., Any] | None = None


@dataclass(frozen=True, slots=True)
class PDK:
    """The spec's ``PDK``: templates, tools, testing and documentation."""

    templates: tuple[PluginTemplate, ...] = tuple(TEMPLATES.values())
    tools: DevTools = field(default_factory=DevTools)
    testing: type[PluginHost] = PluginHost
    documentation: Callable[[Path], Documentation] = generate_docs

    def create_plugin(self, template: str, plugin_id: str, target: Path | None = None) -> Path:
        return create_plugin(template, plugin_id, target)

    def validate_plugin(self, path: Path) -> ValidationResult:
        return self.tools.analyzer(path, known=None)

    def build_plugin(self, path: Path, out_dir: Path | None = None) -> BuildResult:
        return self.tools.compiler(path, out_dir)

    def generate_docs(self, path: Path) -> Documentation:
        return self.documentation(path)
