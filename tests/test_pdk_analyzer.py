"""``plugbay validate``: findings with file, line, severity and a fix, without running the plugin."""

from __future__ import annotations

import json
from pathlib import Path

from plugbay.model.manifest import load_manifest
from plugbay.pdk import Finding, validate_plugin
from plugbay.pdk.analyzer import known_plugins
from tests._cli import plugbay
from tests.conftest import BUNDLED, PluginFactory


def found(result: object, code: str, text: str) -> Finding:
    findings = getattr(result, "findings")  # noqa: B009
    matches = [f for f in findings if f.code == code and text in f.message]
    assert matches, f"no {code} finding with {text!r} in:\n" + "\n".join(
        f"{f.severity} {f.code} {f.message}" for f in findings
    )
    return matches[0]


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_bundled_plugins_have_no_errors() -> None:
    known = known_plugins([BUNDLED], entry_points=False)
    for manifest in known:
        assert manifest.root is not None
        result = validate_plugin(manifest.root, known=known)
        assert result.ok, [f.to_dict() for f in result.errors]
        assert result.commands  # the import check ran and found the commands


def test_interface_signatures(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.link",
        """
        from plugbay import IntegrationPlugin, Message

        class P(IntegrationPlugin):
            def connect(self) -> None:
                pass

            async def send_message(self) -> None:
                pass

            async def is_connected(self) -> bool:
                return True

            async def on_system_event(self, a, b):
                pass
        """,
        type="integration",
    )
    result = validate_plugin(d, known=None)
    main = d / "main.py"
    f = found(result, "interface", "connect must be 'async def' as in IntegrationPlugin")
    assert (f.file, f.line, f.severity) == (str(main), line_of(main, "def connect"), "error")
    assert f.hint == "write async def connect(self)"
    f = found(result, "interface", "send_message() does not match IntegrationPlugin.send_message")
    assert f.hint == "write async def send_message(self, message)"
    found(result, "interface", "is_connected must be 'def' as in IntegrationPlugin")
    f = found(result, "interface", "does not implement disconnect()")
    assert f.line == line_of(main, "class P")
    assert not result.ok


def test_wrong_base_and_identity(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.kind",
        """
        import plugbay

        class P(plugbay.UtilityPlugin):
            version = "9.9.9"
        """,
        type="system",
    )
    result = validate_plugin(d, known=None)
    found(result, "interface", "the manifest says type 'system' but P is a UtilityPlugin")
    found(result, "interface", "the class says version = '9.9.9' but the manifest says '1.0.0'")


def test_local_base_classes_are_followed(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.based",
        """
        from .base import Base

        class P(Base):
            async def on_system_event(self, event: object) -> None:
                pass
        """,
        type="system",
    )
    (d / "base.py").write_text(
        "from plugbay import SystemPlugin\n\nclass Base(SystemPlugin):\n    pass\n"
    )
    assert validate_plugin(d, known=None).ok


def test_commands_must_be_fully_annotated_with_boundary_types(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.cmds",
        """
        import socket
        from dataclasses import dataclass
        from typing import TypedDict
        from plugbay import UtilityPlugin, command

        class Plain:
            pass

        @dataclass
        class Point:
            x: int
            inner: Plain

        class Row(TypedDict):
            name: str

        Cell = str | int | None

        class P(UtilityPlugin):
            @command
            def untyped(self, a, b: int):
                return a

            @command
            def star(self, *items: int, **more: int) -> int:
                return 0

            @command
            def plain(self, p: Plain) -> "Plain":
                return p

            @command
            def nested(self, p: list[dict[str, Point]]) -> int:
                return 0

            @command
            def sock(self, s: socket.socket) -> None:
                pass

            @command(name="renamed")
            def typo(self, x: Strr) -> None:
                pass

            @command
            async def fine(self, rows: list[Row], cell: Cell = None) -> dict[str, list[Cell]]:
                return {}
        """,
        extra='[permissions]\nnetwork = ["127.0.0.1:80"]\n',
    )
    result = validate_plugin(d, known=None)
    main = d / "main.py"
    f = found(result, "command", "command 'untyped' parameter 'a' has no type annotation")
    assert f.line == line_of(main, "def untyped") and f.hint and "annotate it" in f.hint
    found(result, "command", "command 'untyped' has no return annotation")
    found(result, "command", "command 'star' has parameter *items")
    found(result, "command", "command 'star' has parameter **more")
    f = found(result, "command-type", "command 'plain' parameter 'p': Plain cannot cross")
    assert f.hint and "@dataclass" in f.hint
    found(result, "command-type", "command 'plain' result: Plain cannot cross")
    found(result, "command-type", "command 'nested' parameter 'p': field 'inner' of Point: Plain")
    found(result, "command-type", "command 'sock' parameter 's': socket.socket cannot cross")
    found(result, "command-type", "command 'renamed' parameter 'x': 'Strr' is not defined")
    assert not [f for f in result.findings if "'fine'" in f.message]


def test_permissions_follow_imports_and_calls(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.perms",
        """
        import asyncio
        import os
        import subprocess as sp
        from urllib.request import urlopen
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            async def work(self) -> str:
                await asyncio.open_connection("127.0.0.1", 80)
                await asyncio.create_subprocess_exec("ls")
                os.system("ls")
                return os.environ["HOME"] + (os.getenv("TOKEN") or "")
        """,
        extra='[permissions]\nenv = ["TOKEN"]\n',
    )
    result = validate_plugin(d, known=None)
    main = d / "main.py"
    assert result.ok  # warnings only
    f = found(
        result, "permission", "imports subprocess but the manifest does not ask for subprocess"
    )
    assert (f.severity, f.line) == ("warning", line_of(main, "import subprocess"))
    assert f.hint and "subprocess = true" in f.hint
    f = found(result, "permission", "imports urllib.request but the manifest asks for no network")
    assert f.line == line_of(main, "urlopen")
    found(
        result, "permission", "calls asyncio.open_connection() but the manifest asks for no network"
    )
    found(result, "permission", "calls asyncio.create_subprocess_exec()")
    found(result, "permission", "calls os.system()")
    found(
        result, "permission", "reads os.environ['HOME'] but the manifest does not ask for env:HOME"
    )
    assert not [f for f in result.findings if "TOKEN" in f.message]  # asked for


def test_asking_for_the_permission_silences_the_warning(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.net",
        "import socket\nfrom plugbay import UtilityPlugin\n\nclass P(UtilityPlugin):\n    pass\n",
        extra='[permissions]\nnetwork = ["127.0.0.1:80"]\nsubprocess = true\n',
    )
    result = validate_plugin(d, known=None)
    assert [f.severity for f in result.findings] == ["info"]  # subprocess: asked, unused
    assert "asks for subprocess" in result.findings[0].message


def test_config_keys_the_code_reads_must_be_declared(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.conf",
        """
        from plugbay import PluginContext, UtilityPlugin

        class P(UtilityPlugin):
            async def initialize(self, context: PluginContext) -> None:
                self.a = context.config["level"]
                self.b = context.config.get("levle")
        """,
        extra='[config.level]\ntype = "string"\ndefault = "info"\n\n[config.token]\ntype = "string"\nrequired = true\n',
    )
    result = validate_plugin(d, known=None)
    f = found(result, "config", "reads config key 'levle'")
    assert (
        f.line == line_of(d / "main.py", "levle") and f.hint and "declared: level, token" in f.hint
    )
    f = found(result, "config", "config key 'token' is required and has no default")
    assert f.severity == "info" and f.line == line_of(d / "plugin.toml", "[config.token]")


def test_config_defaults_must_satisfy_the_schema(plugins: PluginFactory) -> None:
    d = plugins("acme.def", extra='[config.port]\ntype = "integer"\ndefault = 0\nminimum = 1\n')
    result = validate_plugin(d, known=None)
    f = found(result, "manifest", "a default in [config] does not satisfy its own schema")
    # the line of the entry's default, not of [config.port] nor of the plugin's own keys
    assert f.file == str(d / "plugin.toml") and f.line == line_of(d / "plugin.toml", "default = 0")
    assert result.manifest is None and not result.ok


def test_dependencies_and_services_against_known_plugins(plugins: PluginFactory) -> None:
    plugins("acme.base", version="1.4.0", extra='[services]\nprovides = { store = "1.4.0" }\n')
    d = plugins(
        "acme.top",
        extra=(
            '[dependencies]\n"acme.base" = "^2.0"\n"acme.gone" = "*"\n\n'
            '[optional-dependencies]\n"acme.maybe" = "*"\n\n'
            '[services]\nrequires = { store = "^2", cache = "*" }\n'
        ),
    )
    known = known_plugins([plugins.root], entry_points=False)
    result = validate_plugin(d, known=known)
    toml = d / "plugin.toml"
    f = found(result, "dependency", "no known version of 'acme.base' satisfies ^2.0 (known: 1.4.0)")
    assert f.line == line_of(toml, '"acme.base"')
    found(result, "dependency", "dependency 'acme.gone' is not a plugin the host knows")
    f = found(result, "dependency", "optional dependency 'acme.maybe'")
    assert f.severity == "warning"
    found(
        result, "service", "no known plugin provides service 'store' ^2 (provided: acme.base 1.4.0)"
    )
    found(result, "service", "no known plugin provides service 'cache'")


def test_ranges_met_one_by_one_but_not_together_go_to_the_resolver(
    plugins: PluginFactory,
) -> None:
    plugins("acme.a", version="1.0.0", extra='[dependencies]\n"acme.c" = "^1"\n')
    plugins("acme.c", version="1.0.0")
    plugins("acme.c", version="2.0.0")
    d = plugins("acme.b", extra='[dependencies]\n"acme.a" = "^1"\n"acme.c" = "^2"\n')
    result = validate_plugin(d, known=known_plugins([plugins.root], entry_points=False))
    found(result, "dependency", "the dependencies cannot all be met together")


def test_a_range_no_version_can_be_in_is_its_text_to_fix(plugins: PluginFactory) -> None:
    plugins("acme.greeter", version="1.0.0", extra='[services]\nprovides = { greet = "1.0.0" }\n')
    plugins("acme.maybe", version="1.0.0")
    d = plugins(
        "acme.user",
        extra=(
            '[dependencies]\n"acme.greeter" = ">=2 <1"\n\n'
            '[optional-dependencies]\n"acme.maybe" = ">1.0.0 <=1.0.0"\n\n'
            '[services]\nrequires = { greet = ">=2,<1" }\n'
        ),
    )
    toml = d / "plugin.toml"
    result = validate_plugin(d, known=known_plugins([plugins.root], entry_points=False))
    f = found(result, "range", "the range of dependency 'acme.greeter', >=2 <1, matches no version")
    assert f.severity == "error" and f.line == line_of(toml, '"acme.greeter"')
    assert "it is empty" in f.message
    assert f.hint is not None and f"correct the range in {toml}" in f.hint
    assert "widen" not in f.hint and "install a version" not in f.hint
    found(result, "range", "the range of required service 'greet', >=2,<1, matches no version")
    # the plugin loads without an optional dependency out of reach: a warning
    f = found(result, "range", "optional dependency 'acme.maybe', >1.0.0 <=1.0.0, matches no")
    assert f.severity == "warning"
    # an empty range is not also a version missing from the host
    assert not [x for x in result.findings if x.code in ("dependency", "service")], result.findings


def test_validate_calls_a_range_with_no_room_empty_and_says_why(plugins: PluginFactory) -> None:
    plugins("acme.greeter", version="1.0.0")
    plugins("acme.maybe", version="1.0.0")
    d = plugins(
        "acme.user",
        extra=(
            '[dependencies]\n"acme.greeter" = "<0.0.0"\n\n'
            '[optional-dependencies]\n"acme.maybe" = "==1.0,!=1.0"\n'
        ),
    )
    toml = d / "plugin.toml"
    result = validate_plugin(d, known=known_plugins([plugins.root], entry_points=False))
    f = found(result, "range", "the range of dependency 'acme.greeter', <0.0.0, matches no version")
    assert f.severity == "error" and f.line == line_of(toml, '"acme.greeter"')
    assert "it is empty" in f.message
    assert f.hint is not None and f.hint.startswith(
        f"correct the range in {toml}: below 0.0.0 there are only 0.0.0's own pre-releases"
    )
    assert "write the versions it works with" in f.hint
    f = found(result, "range", "optional dependency 'acme.maybe', ==1.0,!=1.0, matches no version")
    assert f.hint is not None and "no version is in '==1.0' and '!=1.0' at once" in f.hint
    assert not [x for x in result.findings if x.code in ("dependency", "service")], result.findings


def test_a_python_requirement_with_no_room_is_called_empty(plugins: PluginFactory) -> None:
    """`requests<0.0.0` and `attrs==1.0,!=1.0` in python-dependencies said nothing (only
    crossing bounds were weighed): installing the plugin would fail with uv finding no
    version, which invites publishing one."""
    d = plugins(
        "acme.pydeps",
        extra=(
            'python-dependencies = [\n    "requests<0.0.0",\n    "attrs==1.0,!=1.0",\n'
            '    "humanize[x] (!=2.0, ==2.0) ; python_version >= \'3\'",\n    "idna>=2,<3",\n]\n'
        ),
    )
    toml = d / "plugin.toml"
    result = validate_plugin(d, known=None, import_check=False)
    f = found(result, "python-dependency", "'requests<0.0.0' can be met by no version of requests")
    assert f.severity == "error" and f.line == line_of(toml, '"requests<0.0.0"')
    assert f.message.endswith(
        "its range is empty: below 0.0.0 there are only 0.0.0's own pre-releases, which "
        "'<0.0.0' leaves out (the least version is 0.dev0)"
    )
    assert f.hint == (
        f"correct the range in {toml}: below 0.0.0 there are only 0.0.0's own pre-releases, "
        "which '<0.0.0' leaves out (the least version is 0.dev0), so installing a version of "
        "requests will not help; write the versions it works with, e.g. 'requests>=1.2,<2'"
    )
    f = found(result, "python-dependency", "'attrs==1.0,!=1.0' can be met by no version of attrs")
    assert f.severity == "error" and f.line == line_of(toml, '"attrs==1.0,!=1.0"')
    assert f.message.endswith("no version is in '==1.0' and '!=1.0' at once")
    # the clauses named as written, in the author's order, with extras and a marker
    f = found(result, "python-dependency", "'humanize[x] (!=2.0, ==2.0)")
    assert f.message.endswith("no version is in '!=2.0' and '==2.0' at once")
    assert not [x for x in result.findings if "idna" in x.message], result.findings


def test_the_plugin_is_never_imported_when_a_static_check_fails(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    d = plugins(
        "acme.side",
        f"""
        from pathlib import Path
        from plugbay import UtilityPlugin, command
        Path({str(marker)!r}).write_text("module code ran")

        class P(UtilityPlugin):
            @command
            def f(self, x) -> int:
                return 1
        """,
    )
    assert not validate_plugin(d, known=None).ok
    assert not validate_plugin(d, known=None, import_check=False).ok
    assert not marker.exists()


def test_import_errors_are_findings(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.boom",
        "from plugbay import UtilityPlugin\nraise RuntimeError('boom')\n\nclass P(UtilityPlugin):\n    pass\n",
    )
    f = found(validate_plugin(d, known=None), "import", "raised RuntimeError: boom")
    assert f.file == str(d / "main.py") and f.line == 2


def test_missing_entry_and_syntax_errors(plugins: PluginFactory) -> None:
    d = plugins("acme.syntax", "def broken(:\n")
    f = found(validate_plugin(d, known=None), "syntax", "syntax error")
    assert (f.file, f.line) == (str(d / "main.py"), 1)
    d = plugins(
        "acme.noentry",
        manifest='id = "acme.noentry"\nversion = "1.0.0"\ntype = "utility"\nentry = "nothere:P"\n',
    )
    f = found(validate_plugin(d, known=None), "entry", "entry module 'nothere' does not exist")
    assert f.line == 4
    d = plugins(
        "acme.nocls", "from plugbay import UtilityPlugin\n\nclass Q(UtilityPlugin):\n    pass\n"
    )
    f = found(validate_plugin(d, known=None), "entry", "module 'main' defines no class 'P'")
    assert f.hint and "plugin classes there: Q" in f.hint


def test_cli_output_json_and_exit_codes(plugins: PluginFactory, tmp_path: Path) -> None:
    good = plugins("acme.good")
    bad = plugins(
        "acme.badcmd",
        "from plugbay import UtilityPlugin, command\n\nclass P(UtilityPlugin):\n    @command\n    def f(self, x):\n        return x\n",
    )
    ok = plugbay("validate", str(good), cwd=tmp_path)
    assert ok.returncode == 0 and "ok acme.good 1.0.0 (utility)" in ok.stdout
    assert "ping() -> str" in ok.stdout
    result = plugbay("validate", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    main = bad / "main.py"
    assert (
        f"{main}:5: error[command] command 'f' parameter 'x' has no type annotation"
        in result.stdout
    )
    assert "fix: annotate it" in result.stdout
    assert "invalid acme.badcmd 1.0.0 (utility)" in result.stdout
    [data] = json.loads(plugbay("validate", str(bad), "--json", cwd=tmp_path).stdout)
    assert data["ok"] is False and data["plugin"] == "acme.badcmd"
    first = data["findings"][0]
    assert set(first) == {"severity", "code", "message", "file", "line", "hint", "source"}
    both = plugbay("validate", str(good), str(bad), "--json", cwd=tmp_path)
    assert both.returncode == 1 and [r["ok"] for r in json.loads(both.stdout)] == [True, False]


def test_validate_knows_the_plugins_directory(plugins: PluginFactory, tmp_path: Path) -> None:
    d = plugins("acme.needs", extra='[dependencies]\n"acme.there" = "^1"\n')
    alone = plugbay("validate", str(d), "--plugins", str(tmp_path / "none"), cwd=tmp_path)
    assert alone.returncode == 1 and "'acme.there' is not a plugin the host knows" in alone.stdout
    plugins("acme.there")
    with_it = plugbay("validate", str(d), "--plugins", str(plugins.root), cwd=tmp_path)
    assert with_it.returncode == 0, with_it.stdout


def test_a_manifest_that_is_not_toml_is_one_finding(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text("not toml [")
    result = validate_plugin(tmp_path, known=None)
    assert len(result.findings) == 1 and result.findings[0].code == "manifest"
    assert result.findings[0].file == str(tmp_path / "plugin.toml")


def test_every_missing_key_of_a_manifest_is_a_finding(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text('id = "acme.x"\n')
    result = validate_plugin(tmp_path, known=None)
    assert [(f.code, f.message) for f in result.findings] == [
        ("manifest", f"missing required field '{key}'") for key in ("version", "type", "entry")
    ]
    assert {f.file for f in result.findings} == {str(tmp_path / "plugin.toml")}


def test_load_manifest_unchanged_for_pyproject(tmp_path: Path) -> None:
    from plugbay.pdk import create_plugin

    package = create_plugin("utility", "acme.py", tmp_path / "p")
    assert load_manifest(package).entry == "acme_py.plugin:PyPlugin"
    assert validate_plugin(package, known=[]).ok


def test_permissions_asked_but_unused_are_noted(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.greedy", extra='[permissions]\nnetwork = ["127.0.0.1:80"]\nsubprocess = true\n'
    )
    result = validate_plugin(d, known=None)
    assert result.ok and not result.warnings
    f = found(
        result, "permission", "asks for subprocess but no import or call in its code needs it"
    )
    assert f.severity == "info" and f.line == line_of(d / "plugin.toml", "subprocess = true")
    found(result, "permission", "asks for network but no import or call")


def test_a_range_npm_and_pep440_read_differently_is_warned_about(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    d = plugins(
        "acme.spell",
        extra=(
            'host = "<=0.1"\n\n[dependencies]\n"acme.base" = ">1.2"\n"acme.pre" = ">=1.0.0-rc.1"\n'
            '"acme.clear" = ">=1.2.0"\n"acme.npm" = "^1.2"\n"acme.pep" = ">=1.0.0a1"\n'
        ),
    )
    toml = d / "plugin.toml"
    result = validate_plugin(d)
    f = found(result, "range", "range '>1.2' means different things in npm and PEP 440 syntax")
    assert f.severity == "warning" and f.line == line_of(toml, '"acme.base"')
    assert "plugbay reads it as PEP 440, so 1.2.1 is in it; read as npm it would not be" in (
        f.message
    )
    assert f.hint is not None and "write '>1.2.0'" in f.hint and "'>1.2.x' for the npm" in f.hint
    f = found(result, "range", "range '<=0.1'")
    assert f.line == line_of(toml, "host =") and f.hint and "'<=0.1.0'" in f.hint
    f = found(result, "range", "range '>=1.0.0-rc.1'")
    assert "plugbay reads it as npm" in f.message
    assert f.hint and "write '>=1.0.0rc1' for the PEP 440 meaning" in f.hint
    spelled = [f.message for f in result.findings if f.code == "range"]
    assert len(spelled) == 3, spelled  # '>=1.2.0', '^1.2' and '>=1.0.0a1' mean one thing
    # the suggested spellings are quiet, and keep the meaning
    clean = plugins(
        "acme.spelled",
        extra='host = "<=0.1.0"\n\n[dependencies]\n"acme.base" = ">1.2.0"\n',
    )
    assert not [f for f in validate_plugin(clean).findings if f.code == "range"]
    shown = plugbay("validate", str(d), cwd=tmp_path)
    assert "warning[range] range '>1.2' means different things" in shown.stdout


def test_events_the_code_emits_and_hears_must_be_declared(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.events",
        """
        from plugbay import UtilityPlugin, command, on_event

        SAVED = "notes.saved"

        class P(UtilityPlugin):
            @command
            async def save(self) -> None:
                await self.context.events.emit(SAVED, {"key": "a"})
                await self.context.events.emit("notes.gone", {"key": "a"})

            @on_event("notes.other")
            def other(self, event: dict[str, str]) -> None:
                pass
        """,
        extra='[events]\nemits = ["notes.saved"]\n[events.listens."notes.heard"]\n',
    )
    result = validate_plugin(d, known=None)
    f = found(result, "events", "emits the event 'notes.gone'")
    assert f.severity == "error" and f.line == line_of(d / "main.py", "notes.gone")
    assert f.hint and '[events] emits = ["notes.gone"]' in f.hint
    assert not [x for x in result.findings if "'notes.saved'" in x.message]  # declared
    # the handlers against the listeners, as the host checks them when it loads the
    # plugin: found in the same run as the undeclared emit, each at its line
    f = found(result, "events", "the manifest listens to notes.heard but P has no handler")
    assert (f.file, f.line) == (str(d / "plugin.toml"), line_of(d / "plugin.toml", "notes.heard"))
    f = found(result, "events", "P handles notes.other, which the manifest does not listen to")
    assert (f.file, f.line) == (str(d / "main.py"), line_of(d / "main.py", "notes.other"))
