"""The import check: the entry class imported into a throwaway namespace, as the host
would, to catch what only running the module shows (an exception at module level, an
annotation that does not resolve).

What fails is said in the author's terms: the line of the plugin's own code that
raised, with its text, and the imports that led there; never plugbay's frames or the
synthetic package (``plugbay_plugins.<slug>``) the code was imported under.
"""

from __future__ import annotations

import dataclasses
import os
import re
import traceback

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import PluginManifest
from plugbay.pdk._analysis.base import Finding, _Context

__all__: list[str] = []


class _ImportCheck(_Context):
    def _import_check(self) -> None:
        from plugbay.isolation.loading import import_plugin, unload_code

        # the tracebacks name files by absolute path: so does the manifest the code is
        # imported for, or none of its frames is found to be the plugin's
        here = _absolute(self.m)
        try:
            code = import_plugin(here)
        except PlugbayError as exc:
            self.result.findings.append(self._import_finding(exc, here))
            return
        if code.namespace:
            unload_code(code.namespace)
        self.result.commands = [spec.describe() for _, spec in sorted(code.commands.items())]

    def _import_finding(self, exc: PlugbayError, here: PluginManifest) -> Finding:
        root = str(here.root) if here.root is not None else None
        frames = _plugin_frames(exc.__context__, root)
        if frames:
            file, line = frames[-1].filename, frames[-1].lineno
        else:
            file, line = self._where(exc.where or "", here)
        file = self._shown(file, root)
        message = _without_namespace(exc.message)
        hint = exc.hint
        if "plugbay info" in (hint or ""):  # a host's advice: here there is no host to ask
            hint = "fix the error at module level (the line shown raised it)"
        if len(frames) > 1:
            chain = " → ".join(f"{self._shown(f.filename, root)}:{f.lineno}" for f in frames)
            hint = f"{hint}; imported through {chain}"
        if self.m.python_dependencies and "no module named" in message.lower():
            # its libraries live in the environment the host builds for it, not here
            return Finding(
                "info",
                "import",
                f"not imported here ({message}): it runs with its own Python environment, "
                "which the host builds at install",
                file,
                line,
                "install its requirements here to check the import too",
            )
        return Finding("error", "import", message, file, line, hint)

    def _where(self, where: str, here: PluginManifest) -> tuple[str, int | None]:
        """``file:line`` from an error's ``where``: a path with a line, a path (the entry
        class's file: its line), or a dotted name in the plugin's code."""
        m = re.match(r"^(.*?):(\d+)$", where)
        if m:
            return m.group(1), int(m.group(2))
        dotted = _without_namespace(where)
        if dotted != where or (where and not os.path.exists(where)):
            found = self._dotted_line(dotted)
            if found is not None:
                return found
        entry = self.modules.get(here.module)
        if entry is not None and where and os.path.abspath(where) == os.path.abspath(entry.path):
            cls = entry.classes.get(here.attribute.split(".")[0])
            return str(entry.path), cls.lineno if cls is not None else None
        return where or str(self.root), None

    def _dotted_line(self, dotted: str) -> tuple[str, int | None] | None:
        """``module.Class.method`` of the plugin's code → its file and line."""
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            module = self.modules.get(".".join(parts[:end]))
            if module is None:
                continue
            node: object = module.tree
            line = None
            for name in parts[end:]:
                body = getattr(node, "body", [])
                node = next((n for n in body if getattr(n, "name", None) == name), None)
                if node is None:
                    break
                line = getattr(node, "lineno", line)
            return str(module.path), line
        return None

    def _shown(self, file: str, root: str | None) -> str:
        """``file`` as the plugin's path was given (relative, when it was)."""
        if root is not None and self.m.root is not None and file.startswith(root + os.sep):
            return str(self.m.root / file[len(root) + 1 :])
        return file


def _absolute(manifest: PluginManifest) -> PluginManifest:
    if manifest.root is None or manifest.root.is_absolute():
        return manifest
    return dataclasses.replace(
        manifest,
        root=manifest.root.absolute(),
        path=manifest.path.absolute() if manifest.path is not None else None,
    )


def _plugin_frames(cause: BaseException | None, root: str | None) -> list[traceback.FrameSummary]:
    """The frames of ``cause``'s traceback in the plugin's own code, outermost first."""
    if cause is None or root is None:
        return []
    return [
        f for f in traceback.extract_tb(cause.__traceback__) if f.filename.startswith(root + os.sep)
    ]


_NAMESPACE_RE = re.compile(r"\bplugbay_plugins\.\w+(?:\.|\b)")


def _without_namespace(text: str) -> str:
    """``text`` without the synthetic package the plugin's code was imported under."""
    return _NAMESPACE_RE.sub("", text)
