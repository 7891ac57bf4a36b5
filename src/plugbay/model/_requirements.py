"""A plugin's Python requirements (PEP 508) in its manifest: checked, and a wheel's
``Requires-Dist`` written in as ``python-dependencies`` (moved out of ``manifest.py``
to keep it within its size; ``plugbay.model.manifest`` re-exports both)."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["python_requirement_problem", "with_requires_dist"]


def python_requirement_problem(text: str) -> str | None:
    """Why ``text`` is not a PEP 508 requirement, or None when it is one."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(text)
    except InvalidRequirement as exc:
        return str(exc).splitlines()[0]
    return None


def with_requires_dist(manifest_text: str, requires: Sequence[str]) -> str:
    """A ``plugin.toml``'s text with a wheel's ``Requires-Dist`` as its
    ``python-dependencies`` (when the manifest declares none itself): a plugin built
    from a ``pyproject.toml`` keeps its ``[project] dependencies`` when installed."""
    wanted = [r for r in requires if "extra ==" not in r.replace("extra==", "extra ==")]
    if not wanted or re.search(r"^\s*python-dependencies\s*=", manifest_text, re.M):
        return manifest_text
    line = "python-dependencies = [" + ", ".join(_toml_string(r) for r in wanted) + "]\n"
    table = re.search(r"^\s*\[", manifest_text, re.M)
    at = table.start() if table else len(manifest_text)
    head = manifest_text[:at]
    if head and not head.endswith("\n"):
        head += "\n"
    return head + line + manifest_text[at:]


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
