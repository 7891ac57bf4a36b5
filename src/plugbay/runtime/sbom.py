"""A plugin's Python packages as a CycloneDX SBOM (``plugbay info ID --sbom FILE``).

Written by hand from the environment's metadata (name, version, license,
``Requires-Dist``): CycloneDX 1.5 JSON, each package with its package URL
(``pkg:pypi/NAME@VERSION``) and what it depends on, the plugin as the root.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

__all__ = ["cyclonedx"]


def _names(text: str) -> str:
    try:
        return str(canonicalize_name(Requirement(text).name))
    except InvalidRequirement:
        return ""


def _applies(text: str) -> bool:
    try:
        marker = Requirement(text).marker
    except InvalidRequirement:
        return False
    return marker is None or marker.evaluate({"extra": ""})


def cyclonedx(
    plugin_id: str, version: str, packages: Sequence[Mapping[str, Any]], *, host_version: str
) -> dict[str, Any]:
    """A CycloneDX 1.5 SBOM (JSON) of a plugin and the Python packages it runs with."""
    by_name: dict[str, Mapping[str, Any]] = {
        str(canonicalize_name(str(p["name"]))): p for p in packages
    }
    root = f"plugin:{plugin_id}@{version}"

    def ref(p: Mapping[str, Any]) -> str:
        return f"pkg:pypi/{canonicalize_name(str(p['name']))}@{p['version']}"

    components = []
    dependencies = []
    for p in packages:
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref(p),
            "name": str(p["name"]),
            "version": str(p["version"]),
            "purl": ref(p),
        }
        if p.get("license"):
            component["licenses"] = [{"license": {"name": str(p["license"])}}]
        components.append(component)
        deps = sorted(
            {
                ref(by_name[n])
                for r in p.get("requires", ())
                if _applies(r) and (n := _names(r)) in by_name
            }
        )
        dependencies.append({"ref": ref(p), "dependsOn": deps})
    direct = [ref(p) for p in packages if p.get("direct")]
    dependencies.insert(0, {"ref": root, "dependsOn": direct or [ref(p) for p in packages]})
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tools": {
                "components": [{"type": "application", "name": "plugbay", "version": host_version}]
            },
            "component": {
                "type": "application",
                "bom-ref": root,
                "name": plugin_id,
                "version": version,
            },
        },
        "components": components,
        "dependencies": dependencies,
    }
