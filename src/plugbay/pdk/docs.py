"""``plugbay docs``: a plugin's reference, from its manifest and its code (the spec's
``PDK.documentation``).

Nothing is imported: commands, their parameters, types, defaults and docstrings
are read from the source with :mod:`ast`, the rest from the manifest. The same
model is written as Markdown and as one self-contained HTML page.
"""

from __future__ import annotations

import ast
import html
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from plugbay.api.errors import PlugbayError
from plugbay.model.manifest import ConfigField, PluginManifest, load_manifest
from plugbay.pdk.errors import PdkError

__all__ = ["CommandDoc", "Documentation", "ParamDoc", "generate_docs", "write_docs"]


@dataclass(frozen=True, slots=True)
class ParamDoc:
    name: str
    type: str
    default: str | None  # source text; None when required


@dataclass(frozen=True, slots=True)
class CommandDoc:
    name: str
    params: tuple[ParamDoc, ...]
    returns: str
    doc: str
    is_async: bool
    options: dict[str, str] = field(default_factory=dict)
    file: str = ""
    line: int = 0

    @property
    def signature(self) -> str:
        args = ", ".join(
            f"{p.name}: {p.type}" + (f" = {p.default}" if p.default is not None else "")
            for p in self.params
        )
        return f"{self.name}({args}) -> {self.returns}"


@dataclass(slots=True)
class Documentation:
    """A plugin's reference: the spec's ``Documentation``."""

    manifest: PluginManifest
    summary: str
    commands: list[CommandDoc]
    class_attributes: dict[str, str]

    @property
    def markdown(self) -> str:
        return _markdown(self)

    @property
    def html(self) -> str:
        return _html(self)


def generate_docs(path: Path) -> Documentation:
    """Read the plugin at ``path`` and describe it (raises when its manifest or code is unreadable)."""
    from plugbay.pdk.analyzer import ValidationResult, _Analysis

    try:
        manifest = load_manifest(Path(path))
    except PlugbayError as exc:
        raise PdkError(
            f"cannot document it: {exc.message}", where=exc.where, hint=exc.hint
        ) from None
    if manifest.wasm is not None:
        return _wasm_documentation(manifest)
    analysis = _Analysis(manifest, ValidationResult(Path(path)))
    analysis._parse_modules()
    entry = analysis._entry_class()
    if entry is None:
        problem = analysis.result.errors[0] if analysis.result.errors else None
        raise PdkError(
            f"cannot document it: {problem.message if problem else 'no entry class'}",
            plugin=manifest.id,
            where=problem.location() if problem else str(path),
            hint=(problem.hint if problem else None) or "run 'plugbay validate' first",
        )
    module, cls = entry
    summary = ast.get_docstring(cls) or ast.get_docstring(module.tree) or ""
    commands: dict[str, CommandDoc] = {}
    attributes: dict[str, str] = {}
    for mod, klass in reversed(analysis._class_chain(module, cls)):
        file = str(mod.path.relative_to(analysis.root))
        for item in klass.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_command(item):
                doc = _command_doc(item, file)
                commands[doc.name] = doc
            else:
                attributes.update(_class_attribute(item))
    return Documentation(
        manifest, summary, sorted(commands.values(), key=lambda c: c.name), attributes
    )


def _wasm_documentation(manifest: PluginManifest) -> Documentation:
    """A Wasm plugin's commands are declared in its manifest: documented from there."""
    import inspect

    from plugbay.model.wasm_commands import command_lines, spelled_type

    assert manifest.wasm is not None
    path = manifest.path
    lines = command_lines(path.read_text()) if path is not None and path.is_file() else {}
    commands = [
        CommandDoc(
            name=c.name,
            params=tuple(
                ParamDoc(n, spelled_type(t), None if d is inspect.Parameter.empty else repr(d))
                for n, t, d in c.params
            ),
            returns=spelled_type(c.returns),
            doc=c.doc,
            is_async=False,
            options={"timeout": f"{c.timeout:g}"} if c.timeout else {},
            file=path.name if path is not None else "",
            line=lines.get(c.name, 0),
        )
        for c in manifest.wasm.commands.values()
    ]
    return Documentation(manifest, manifest.description, sorted(commands, key=lambda c: c.name), {})


#: the class attributes a plugin's page shows (the spec's features a plugin declares in code)
_DOCUMENTED_ATTRIBUTES = frozenset({"priority", "system_hooks", "protocol", "hooks"})


def _class_attribute(item: ast.stmt) -> dict[str, str]:
    """``{name: source}`` when ``item`` assigns one of the documented class attributes."""
    target: ast.expr
    value: ast.expr | None
    if isinstance(item, ast.AnnAssign):
        target, value = item.target, item.value
    elif isinstance(item, ast.Assign) and len(item.targets) == 1:
        target, value = item.targets[0], item.value
    else:
        return {}
    if not isinstance(target, ast.Name) or target.id not in _DOCUMENTED_ATTRIBUTES or value is None:
        return {}
    return {target.id: ast.unparse(value)}


def write_docs(path: Path, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``<id>.md`` and ``<id>.html`` (default: into ``<plugin>/docs``)."""
    docs = generate_docs(path)
    root = docs.manifest.root or Path(path)
    out_dir = Path(out_dir) if out_dir is not None else root / "docs"
    out_dir.mkdir(parents=True, exist_ok=True)
    md, page = out_dir / f"{docs.manifest.id}.md", out_dir / f"{docs.manifest.id}.html"
    md.write_text(docs.markdown, encoding="utf-8")
    page.write_text(docs.html, encoding="utf-8")
    return md, page


def _is_command(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    from plugbay.pdk.analyzer import _is_command as check

    return check(fn)


def _command_doc(fn: ast.FunctionDef | ast.AsyncFunctionDef, file: str) -> CommandDoc:
    name = fn.name
    options: dict[str, str] = {}
    for d in fn.decorator_list:
        if isinstance(d, ast.Call):
            for kw in d.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    name = str(kw.value.value)
                elif kw.arg:
                    options[kw.arg] = ast.unparse(kw.value)
    args = fn.args
    positional = [*args.posonlyargs, *args.args][1:]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(
        args.defaults
    )
    params = [
        ParamDoc(a.arg, _annotation(a.annotation), ast.unparse(d) if d is not None else None)
        for a, d in zip(positional, defaults, strict=True)
    ]
    params += [
        ParamDoc(a.arg, _annotation(a.annotation), ast.unparse(d) if d is not None else None)
        for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    return CommandDoc(
        name=name,
        params=tuple(params),
        returns=_annotation(fn.returns),
        doc=ast.get_docstring(fn) or "",
        is_async=isinstance(fn, ast.AsyncFunctionDef),
        options=options,
        file=file,
        line=fn.lineno,
    )


def _annotation(node: ast.expr | None) -> str:
    if node is None:
        return "?"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ast.unparse(node)


# --------------------------------------------------------------------------- the model as rows


def _facts(d: Documentation) -> list[tuple[str, str]]:
    m = d.manifest
    rows = [
        ("id", m.id),
        ("version", str(m.version)),
        ("type", m.type),
        ("entry", m.entry),
        ("host versions", str(m.host)),
        ("isolation asked", m.isolation),
        ("capabilities", ", ".join(m.capabilities) or "none"),
    ]
    if m.authors:
        rows.append(("authors", ", ".join(m.authors)))
    if m.license:
        rows.append(("license", m.license))
    labels = {
        "priority": "priority",
        "system_hooks": "system hooks",
        "protocol": "protocol",
        "hooks": "hooks",
    }
    for key, value in d.class_attributes.items():
        rows.append((labels[key], value))
    if m.priority is not None:
        rows.append(("priority (manifest)", str(m.priority)))
    return rows


def _config_rows(m: PluginManifest) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for name, f in m.config.fields.items() if m.config else []:
        kind = f.type if f.type != "array" else f"array of {f.items or 'string'}"
        default = _json(f.default) if f.has_default else "—"
        rows.append((name, kind, default, "; ".join(_constraints(f)) or "—", f.description or ""))
    return rows


def _constraints(f: ConfigField) -> list[str]:
    """A config field's constraints, in words."""
    bounds = [
        (f.minimum, ">= {:g}"),
        (f.maximum, "<= {:g}"),
        (f.min_length, "length >= {}"),
        (f.max_length, "length <= {}"),
    ]
    out = ["one of " + ", ".join(_json(v) for v in f.enum)] if f.enum is not None else []
    out += [form.format(value) for value, form in bounds if value is not None]
    hint = f" ({f.pattern_hint})" if f.pattern_hint else ""
    out += [f"matches {f.pattern} in full{hint}"] if f.pattern else []
    return out + [flag for flag, on in (("required", f.required), ("secret", f.secret)) if on]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _permission_rows(m: PluginManifest) -> list[str]:
    return m.permissions.asked()


def _resource_rows(m: PluginManifest) -> list[tuple[str, str]]:
    data = msgspec.to_builtins(m.resources)
    return [(k.replace("_", "-"), str(v)) for k, v in data.items() if v is not None]


# --------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _markdown(d: Documentation) -> str:
    m = d.manifest
    lines = [f"# {m.name} — `{m.id}` {m.version}", ""]
    if m.description:
        lines += [m.description, ""]
    if d.summary and d.summary != m.description:
        lines += [d.summary, ""]
    lines += _md_table(("", ""), [(f"**{k}**", v) for k, v in _facts(d)])
    lines += ["## Commands", ""]
    if not d.commands:
        lines += ["This plugin has no commands.", ""]
    for c in d.commands:
        lines += _md_command(c)
    sections = (_md_config, _md_dependencies, _md_services, _md_events, _md_permissions)
    for section in (*sections, _md_resources):
        lines += section(m)
    return "\n".join(lines).rstrip() + "\n"


def _md_command(c: CommandDoc) -> list[str]:
    traits = ["async" if c.is_async else "sync"] + [f"{k}={v}" for k, v in c.options.items()]
    lines = [f"### `{c.signature}`", "", f"*{', '.join(traits)}* — `{c.file}:{c.line}`", ""]
    if c.doc:
        lines += [c.doc, ""]
    if c.params:
        lines += _md_table(
            ("parameter", "type", "default"),
            [
                (f"`{p.name}`", f"`{p.type}`", f"`{p.default}`" if p.default else "required")
                for p in c.params
            ],
        )
    return [*lines, f"Returns `{c.returns}`.", ""]


def _md_config(m: PluginManifest) -> list[str]:
    config = _config_rows(m)
    if not config:
        return ["## Configuration", "", "No configuration.", ""]
    return [
        "## Configuration",
        "",
        f'Set under `[plugins."{m.id}"]` in the host\'s `plugbay.toml`.',
        "",
        *_md_table(
            ("key", "type", "default", "constraints", "description"),
            [(f"`{r[0]}`", *r[1:]) for r in config],
        ),
    ]


def _md_dependencies(m: PluginManifest) -> list[str]:
    deps = [(f"`{k}`", f"`{v}`", "no") for k, v in m.dependencies.items()]
    deps += [(f"`{k}`", f"`{v}`", "yes") for k, v in m.optional_dependencies.items()]
    body = _md_table(("plugin", "versions", "optional"), deps) if deps else ["None.", ""]
    return ["## Dependencies", "", *body]


def _md_services(m: PluginManifest) -> list[str]:
    services = [(f"`{k}`", "provides", f"`{v}`") for k, v in m.provides.items()]
    services += [(f"`{k}`", "requires", f"`{v}`") for k, v in m.requires.items()]
    body = _md_table(("service", "", "version"), services) if services else ["None.", ""]
    return ["## Services", "", *body]


def _event_rows(m: PluginManifest) -> list[tuple[str, str, str]]:
    """Each event it emits or hears: name, direction, how it hears it; and what starts it."""
    rows = [(f"`{name}`", "emits", "") for name in m.emits]
    rows += [
        (f"`{name}`", "listens", f"priority {s.priority}, queue {s.queue}, {s.overflow}")
        for name, s in m.listens.items()
    ]
    return rows


def _md_events(m: PluginManifest) -> list[str]:
    rows = _event_rows(m)
    body = _md_table(("event", "", "delivery"), rows) if rows else ["None.", ""]
    starts = (
        f"Starts on demand: {', '.join(f'`{a}`' for a in m.activation)}."
        if m.activation
        else "Starts with the host."
    )
    return ["## Events", "", *body, starts, ""]


def _md_permissions(m: PluginManifest) -> list[str]:
    perms = _permission_rows(m)
    if not perms:
        none = (
            "None: it needs no network, files outside its data directory, environment or processes."
        )
        return ["## Permissions", "", none, ""]
    asked = "Asked for; the operator grants each (`plugbay grant ID PERMISSION`)."
    return ["## Permissions", "", asked, "", *[f"- `{p}`" for p in perms], ""]


def _md_resources(m: PluginManifest) -> list[str]:
    resources = _resource_rows(m)
    body = (
        _md_table(("resource", "asked"), resources) if resources else ["The host's defaults.", ""]
    )
    return ["## Resources", "", *body]


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;margin-top:2rem}h3{font-family:monospace}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
code{background:#f4f4f4;padding:0 .2rem}.meta{color:#666}
pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}
"""


def _inline(text: str) -> str:
    return re.sub(r"``?([^`]+)``?", r"<code>\1</code>", html.escape(text))


def _paragraphs(text: str) -> str:
    """Docstring paragraphs; an indented one (a literal block after ``::``) stays as written."""
    out = []
    for p in re.split(r"\n[ \t]*\n", text.strip()):
        lines = p.splitlines()
        if lines and all(line.startswith("    ") for line in lines):
            out.append(f"<pre>{html.escape(textwrap.dedent(p))}</pre>")
        elif p:
            out.append(f"<p>{_inline(p.replace('::', ':') if p.endswith('::') else p)}</p>")
    return "".join(out)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(d: Documentation) -> str:
    m = d.manifest
    e = html.escape
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(m.id)} {e(str(m.version))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(m.name)} — <code>{e(m.id)}</code> {e(str(m.version))}</h1>",
    ]
    if m.description:
        parts.append(_paragraphs(m.description))
    if d.summary and d.summary != m.description:
        parts.append(_paragraphs(d.summary))
    parts.append(_html_table(("", ""), [(f"<b>{e(k)}</b>", e(v)) for k, v in _facts(d)]))
    parts.append("<h2 id='commands'>Commands</h2>")
    if not d.commands:
        parts.append("<p>This plugin has no commands.</p>")
    parts += [_html_command(c) for c in d.commands]
    parts += [section(m) for section in (_html_config, _html_relations, _html_permissions)]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_command(c: CommandDoc) -> str:
    e = html.escape
    traits = ["async" if c.is_async else "sync"] + [f"{k}={v}" for k, v in c.options.items()]
    parts = [
        f"<h3 id='cmd-{e(c.name)}'>{e(c.signature)}</h3>",
        f"<p class='meta'>{e(', '.join(traits))} — {e(c.file)}:{c.line}</p>",
    ]
    if c.doc:
        parts.append(_paragraphs(c.doc))
    if c.params:
        rows = [
            (
                f"<code>{e(p.name)}</code>",
                f"<code>{e(p.type)}</code>",
                f"<code>{e(p.default)}</code>" if p.default else "required",
            )
            for p in c.params
        ]
        parts.append(_html_table(("parameter", "type", "default"), rows))
    parts.append(f"<p>Returns <code>{e(c.returns)}</code>.</p>")
    return "\n".join(parts)


def _html_config(m: PluginManifest) -> str:
    config = _config_rows(m)
    header = ("key", "type", "default", "constraints", "description")
    rows = [tuple(html.escape(c) for c in r) for r in config]
    body = _html_table(header, rows) if config else "<p>No configuration.</p>"
    return "<h2 id='configuration'>Configuration</h2>\n" + body


def _html_relations(m: PluginManifest) -> str:
    e = html.escape
    deps = [(e(k), e(str(v)), "no") for k, v in m.dependencies.items()]
    deps += [(e(k), e(str(v)), "yes") for k, v in m.optional_dependencies.items()]
    services = [(e(k), "provides", e(str(v))) for k, v in m.provides.items()]
    services += [(e(k), "requires", e(str(v))) for k, v in m.requires.items()]
    return "\n".join(
        [
            "<h2 id='dependencies'>Dependencies</h2>",
            _html_table(("plugin", "versions", "optional"), deps) if deps else "<p>None.</p>",
            "<h2 id='services'>Services</h2>",
            _html_table(("service", "", "version"), services) if services else "<p>None.</p>",
            "<h2 id='events'>Events</h2>",
            _html_table(
                ("event", "", "delivery"),
                [tuple(e(cell.strip("`")) for cell in row) for row in _event_rows(m)],
            )
            if m.emits or m.listens
            else "<p>None.</p>",
        ]
    )


def _html_permissions(m: PluginManifest) -> str:
    e = html.escape
    perms = _permission_rows(m)
    resources = _resource_rows(m)
    return "\n".join(
        [
            "<h2 id='permissions'>Permissions</h2>",
            "<ul>" + "".join(f"<li><code>{e(p)}</code></li>" for p in perms) + "</ul>"
            if perms
            else "<p>None.</p>",
            "<h2 id='resources'>Resources</h2>",
            _html_table(("resource", "asked"), [(e(k), e(v)) for k, v in resources])
            if resources
            else "<p>The host's defaults.</p>",
        ]
    )
