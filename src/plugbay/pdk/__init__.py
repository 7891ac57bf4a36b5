"""The Plugin Development Kit: the spec's ``PDK`` and ``DevTools`` for plugin authors.

=====================  ==========================================  ==================
spec                   plugbay                                     command
=====================  ==========================================  ==================
``createPlugin``       :func:`create_plugin` (templates)           ``plugbay new``
``validatePlugin``     :func:`validate_plugin` (the analyzer)      ``plugbay validate``
``buildPlugin``        :func:`build_plugin` (the compiler)         ``plugbay build``
``generateDocs``       :func:`generate_docs`                       ``plugbay docs``
``testing``            :mod:`plugbay.pdk.testing`, pytest plugin   ``pytest``
``debugger``           :mod:`plugbay.pdk.debug`                    ``plugbay debug``
=====================  ==========================================  ==================

Signing (:mod:`plugbay.pdk.signing`): ``plugbay keygen``, ``sign``, ``verify``,
``trust``; :func:`verify_wheel` and :func:`wheel_to_directory` are what an
installer uses. :class:`plugbay.pdk.kit.PDK` gathers them as the spec's one object.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from plugbay.pdk.errors import BuildError, PdkError, SignatureError, TemplateError, WheelError

if TYPE_CHECKING:
    from plugbay.pdk.analyzer import Finding, ValidationResult, validate_plugin
    from plugbay.pdk.build import BuildResult, build_plugin
    from plugbay.pdk.docs import Documentation, generate_docs, write_docs
    from plugbay.pdk.signing import (
        TrustPolicy,
        TrustStore,
        Verification,
        generate_key,
        sign_wheel,
        verify_wheel,
    )
    from plugbay.pdk.templates import TEMPLATES, PluginTemplate, create_plugin
    from plugbay.pdk.wheels import WheelInfo, inspect_wheel, wheel_to_directory

__all__ = [
    "TEMPLATES",
    "BuildError",
    "BuildResult",
    "Documentation",
    "Finding",
    "PdkError",
    "PluginTemplate",
    "SignatureError",
    "TemplateError",
    "TrustPolicy",
    "TrustStore",
    "ValidationResult",
    "Verification",
    "WheelError",
    "WheelInfo",
    "build_plugin",
    "create_plugin",
    "generate_docs",
    "generate_key",
    "inspect_wheel",
    "sign_wheel",
    "validate_plugin",
    "verify_wheel",
    "wheel_to_directory",
    "write_docs",
]

# Imported on first use: the pytest plugin and the CLI load this package, and most
# runs need one tool, not all of them (signing pulls in cryptography).
_WHERE = {
    "Finding": "analyzer",
    "ValidationResult": "analyzer",
    "validate_plugin": "analyzer",
    "Documentation": "docs",
    "generate_docs": "docs",
    "write_docs": "docs",
    "TrustPolicy": "signing",
    "TrustStore": "signing",
    "Verification": "signing",
    "generate_key": "signing",
    "sign_wheel": "signing",
    "verify_wheel": "signing",
    "TEMPLATES": "templates",
    "PluginTemplate": "templates",
    "create_plugin": "templates",
    "BuildResult": "build",
    "WheelInfo": "wheels",
    "build_plugin": "build",
    "inspect_wheel": "wheels",
    "wheel_to_directory": "wheels",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'plugbay.pdk' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"plugbay.pdk.{module}"), name)
    globals()[name] = value
    return value
