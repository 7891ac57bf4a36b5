"""``plugbay new``: a complete plugin package from a template (the spec's ``PDK.templates``).

A template is a folder of package data (``templates/<type>/``) plus the files
every type shares (``templates/common/``), rendered with :class:`string.Template`.
The package is written to a scratch directory beside the target and moved into
place only when every file is written and the manifest parses, so a failure
leaves nothing half-written behind.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Final

from plugbay.api import PLUGIN_TYPES
from plugbay.api.errors import PlugbayError, did_you_mean
from plugbay.model.manifest import load_manifest
from plugbay.pdk._scratch import scratch_beside
from plugbay.pdk.errors import TemplateError

__all__ = ["TEMPLATES", "PluginTemplate", "check_plugin_id", "create_plugin"]

_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*\Z")


@dataclass(frozen=True, slots=True)
class PluginTemplate:
    """One template: a plugin type and what its generated plugin does."""

    name: str
    description: str
    about: str
    debug_example: str


TEMPLATES: Final[dict[str, PluginTemplate]] = {
    "utility": PluginTemplate(
        "utility",
        "Greets people; a starting point for helpers other plugins call.",
        "It counts greetings in its metrics and logs when it is ready.",
        "greet name=Ada",
    ),
    "system": PluginTemplate(
        "system",
        "Remembers the host's recent system events.",
        "A system plugin hears every host event (`plugin.loaded`, `plugin.failed`, "
        "`host.started`, ...) in priority order. This one keeps the recent ones matching its "
        "`hooks`, counts them by kind and remembers the failures.",
        "events limit=5",
    ),
    "integration": PluginTemplate(
        "integration",
        "A line-protocol TCP client: one line out, one line back.",
        "An integration plugin connects the host to something outside. This one implements "
        "`connect`, `disconnect`, `is_connected` and `send_message` for a TCP peer, driven by "
        "its commands. It asks for the network "
        "permission to its peer, 127.0.0.1:7000; the operator grants it.",
        "open",
    ),
    "extension": PluginTemplate(
        "extension",
        "Text-analysis features: word counts and the most frequent words.",
        "An extension plugin adds features to the host, each backed by a command. This one "
        "registers `word-count` (`count_words(text) -> WordCount`) and `top-words` "
        "(`top_words(text, limit=None)`), runnable by id with `run_feature`.",
        "count_words text='the cat sat'",
    ),
}
assert set(TEMPLATES) == set(PLUGIN_TYPES)


def create_plugin(template: str, plugin_id: str, target: Path | None = None) -> Path:
    """Write a new plugin package for ``plugin_id`` from ``template`` into ``target``.

    ``target`` defaults to ``./<id with dashes>``; it must not exist or be empty.
    Returns the package directory. Every problem is a :class:`TemplateError`.
    """
    spec = TEMPLATES.get(template)
    if spec is None:
        close = did_you_mean(template, TEMPLATES)
        raise TemplateError(
            f"there is no template '{template}'",
            hint=(close + " " if close else "") + f"templates: {', '.join(TEMPLATES)}",
        )
    check_plugin_id(plugin_id)
    target = Path(target) if target is not None else Path(plugin_id.replace(".", "-"))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise TemplateError(
            "the target directory is not empty" if target.is_dir() else "the target is a file",
            where=str(target),
            hint="choose another directory with --dir, or remove what is there",
        )
    names = _names(plugin_id)
    parent = target.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch_beside(parent, ".plugbay-new-")
    try:
        _render(spec, names, scratch)
        try:
            load_manifest(scratch / "pyproject.toml")
        except PlugbayError as exc:  # a bug in a template, never the user's input
            raise TemplateError(
                f"the '{template}' template produced an invalid manifest: {exc}"
            ) from exc
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def check_plugin_id(plugin_id: str) -> None:
    """Refuse an id a new plugin should not have: one the manifest would refuse, and one
    with no dot. Every plugin id is the owner's name, then the plugin's
    (``system.logging``, ``acme.csv-export``), so that plugins of different authors do
    not collide; the suggestion puts an owner in front of the name given."""
    if not _ID_RE.match(plugin_id):
        raise TemplateError(
            f"'{plugin_id}' is not a valid plugin id",
            hint="use lower-case dotted names such as 'acme.greeter' or 'acme.csv-export'",
        )
    if "." not in plugin_id:
        raise TemplateError(
            f"'{plugin_id}' is not a dotted plugin id: a plugin id names its owner, then the "
            "plugin",
            hint=f"put your organisation (or your name) first, e.g. 'plugbay new "
            f"acme.{plugin_id}'; ids look like 'system.logging' or 'acme.csv-export'",
        )


def _names(plugin_id: str) -> dict[str, str]:
    last = plugin_id.rsplit(".", 1)[-1]
    words = [w for w in re.split(r"[-_]", last) if w]
    package = re.sub(r"[.-]", "_", plugin_id)
    if keyword.iskeyword(package):
        package += "_plugin"
    return {
        "plugin_id": plugin_id,
        "package": package,
        "dist": plugin_id.replace(".", "-").replace("_", "-"),
        "class_name": "".join(w.capitalize() for w in words) + "Plugin",
        "title": " ".join(w.capitalize() for w in words),
        "wheel_glob": f"{package}-0.1.0-py3-none-any.whl",
    }


def _render(spec: PluginTemplate, names: dict[str, str], out: Path) -> None:
    root = resources.files("plugbay.pdk") / "templates"
    values = {
        **names,
        "type": spec.name,
        "description": spec.description,
        "about": spec.about,
        "debug_example": spec.debug_example,
    }
    values["manifest"] = _fill((root / spec.name / "manifest.toml.tmpl").read_text(), values)
    pyproject = _fill((root / "common" / "pyproject.toml.tmpl").read_text(), values)
    values["config_table"] = _config_table(pyproject)
    plugin_py = _fill((root / spec.name / "plugin.py.tmpl").read_text(), values)
    values["commands"] = _commands_line(plugin_py)
    package = out / names["package"]
    files = {
        out / "pyproject.toml": pyproject,
        out / "README.md": _fill((root / "common" / "README.md.tmpl").read_text(), values),
        out / ".gitignore": "__pycache__/\n*.egg-info/\nbuild/\ndist/\n.plugbay/\n",
        package / "__init__.py": _fill((root / "common" / "__init__.py.tmpl").read_text(), values),
        package / "py.typed": "",
        package / "plugin.py": plugin_py,
        out / "tests" / "__init__.py": "",
        out / "tests" / "test_plugin.py": _fill(
            (root / spec.name / "test_plugin.py.tmpl").read_text(), values
        ),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _commands_line(plugin_py: str) -> str:
    """The README's list of the generated plugin's commands, read from its code (every
    ``@command``), so the list never lags the template."""
    shown = []
    for node in ast.walk(ast.parse(plugin_py)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
            _is_command(d) for d in node.decorator_list
        ):
            shown.append(f"`{_signature(node)}`")
    if not shown:
        return "It has no commands."
    listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"
    return f"Commands: {listed}."


def _is_command(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Name) and target.id == "command"


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """``name(a, b=1) -> T``: the parameters after ``self``, with their defaults."""
    args = node.args.args[1:]
    defaults = [None] * (len(args) - len(node.args.defaults)) + list(node.args.defaults)
    params = [
        a.arg if d is None else f"{a.arg}={ast.unparse(d)}"
        for a, d in zip(args, defaults, strict=True)
    ]
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{node.name}({', '.join(params)}){returns}"


def _fill(text: str, values: dict[str, str]) -> str:
    return Template(text).substitute(values)


def _config_table(pyproject: str) -> str:
    config = tomllib.loads(pyproject)["tool"]["plugbay"].get("config", {})
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, field in config.items():
        default = field.get("default", "")
        rows.append(
            f"| `{key}` | {field['type']} | `{json.dumps(default)}` | {field.get('description', '')} |"
        )
    return "\n".join(rows)
