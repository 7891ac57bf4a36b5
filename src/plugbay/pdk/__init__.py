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
installer uses.
"""

from __future__ import annotations

from plugbay.pdk.errors import BuildError, PdkError, SignatureError, TemplateError, WheelError
from plugbay.pdk.templates import TEMPLATES, PluginTemplate, create_plugin

__all__ = [
    "TEMPLATES",
    "BuildError",
    "PdkError",
    "PluginTemplate",
    "SignatureError",
    "TemplateError",
    "WheelError",
    "create_plugin",
]
