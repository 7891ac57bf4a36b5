"""A ``pyproject.toml`` plugin's ``[project]`` against its manifest (``[tool.plugbay]``).

``plugbay build`` refuses a package whose ``[project] version`` is not the manifest's
``version``, or whose ``plugbay.plugins`` entry point is not the manifest's ``entry``
(a host installing the wheel would find another version, or another class, than the
manifest says); these are found here first, naming both values and both lines.
"""

from __future__ import annotations

import tomllib
from typing import Any

from plugbay.model._toml_lines import key_line
from plugbay.model.discover import ENTRY_POINT_GROUP
from plugbay.pdk._analysis.base import _Context

__all__: list[str] = []


class _ProjectChecks(_Context):
    """``[project]`` says what the manifest says (a ``pyproject.toml`` plugin only)."""

    def _check_project(self) -> None:
        if not self.table or not self.manifest_text:
            return  # plugin.toml: plugbay build writes [project] from the manifest
        try:
            project = tomllib.loads(self.manifest_text).get("project")
        except (tomllib.TOMLDecodeError, RecursionError):
            return
        if not isinstance(project, dict):
            project = {}  # plugbay build needs one all the same
        if not self.is_broken("version"):
            self._check_version(project)
        if not self.is_broken("id", "entry"):
            self._check_entry_point(project)

    def _line(self, *path: str) -> int | None:
        return key_line(self.manifest_text, path)

    def _check_version(self, project: dict[str, Any]) -> None:
        ours = str(self.m.version)
        theirs = project.get("version")
        if theirs == ours:
            return
        ours_at = self._line(*self.table, "version")
        if theirs is None:  # plugbay build reads it from the file: a dynamic one is none
            listed = project.get("dynamic")
            dynamic = isinstance(listed, list) and "version" in listed
            said = f"[project] has no version{' (it is dynamic)' if dynamic else ''}"
            at = self._line("project")
            lines = f"[tool.plugbay] version at line {ours_at}"
        else:
            said = f"[project] version is {_shown(theirs)}"
            at = self._line("project", "version")
            lines = f"[project] version at line {at}, [tool.plugbay] version at line {ours_at}"
        self.add(
            "error",
            "version",
            f"{said} but the manifest says '{ours}' ({lines}): plugbay build refuses a "
            "plugin whose two versions differ",
            (self.manifest_file, at),
            f'make them the same: version = "{ours}" in both (or the version you mean to '
            "ship); a host installs the wheel by [project] version and runs it by the "
            "manifest's",
        )

    def _check_entry_point(self, project: dict[str, Any]) -> None:
        points = project.get("entry-points")
        group = points.get(ENTRY_POINT_GROUP) if isinstance(points, dict) else None
        declared = group.get(self.m.id) if isinstance(group, dict) else None
        if declared == self.m.entry:
            return
        path = ("project", "entry-points", ENTRY_POINT_GROUP, self.m.id)
        at = self._line(*path) if declared is not None else None
        entry_at = self._line(*self.table, "entry")
        lines = (f"entry point at line {at}, " if at else "") + f"entry at line {entry_at}"
        self.add(
            "error",
            "entry",
            f"the entry point for '{self.m.id}' is {_shown(declared)} but the manifest's entry "
            f"is '{self.m.entry}' ({lines}): plugbay build refuses it, and an installed wheel "
            "would load another class",
            (self.manifest_file, at or entry_at),
            f'[project.entry-points."{ENTRY_POINT_GROUP}"] "{self.m.id}" = "{self.m.entry}"',
        )


def _shown(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)
