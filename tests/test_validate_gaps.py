"""``plugbay validate`` says what the host and ``plugbay build`` will say, all of it in one
run, each problem at the author's own line: import-time errors in the plugin's code,
every problem of the manifest (each misspelt key with the key it should be), config
entries at their own lines, ``[project]`` against ``[tool.plugbay]``, and events as the
host checks them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay.api.errors import ManifestError
from plugbay.model.manifest import load_manifest
from plugbay.pdk import Finding, create_plugin, validate_plugin
from plugbay.runtime.host import Host
from tests._cli import plugbay
from tests.conftest import PluginFactory


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def errors(result: object) -> list[Finding]:
    return [f for f in getattr(result, "findings") if f.severity == "error"]  # noqa: B009


def one(result: object, text: str) -> Finding:
    matches = [f for f in getattr(result, "findings") if text in f.message]  # noqa: B009
    assert len(matches) == 1, [f"{f.code} {f.message}" for f in getattr(result, "findings")]  # noqa: B009
    return matches[0]


# --------------------------------------------------------------------------- import time


def test_an_import_time_error_is_at_the_authors_line_with_its_text(
    plugins: PluginFactory,
) -> None:
    """Given as a relative path, as an author types it (``plugbay validate acme-x``): the
    line of the author's module that raised, its text, and the imports that led there;
    not the plugin's directory alone."""
    d = plugins(
        "acme.limits",
        "from plugbay import UtilityPlugin\nfrom . import helpers\n\nclass P(UtilityPlugin):\n"
        "    pass\n",
    )
    (d / "helpers.py").write_text('"""Limits."""\n\nLIMIT = int("ten")\n')
    shown = plugbay("validate", d.name, cwd=plugins.root)
    assert shown.returncode == 1
    lines = shown.stdout.splitlines()
    at = lines.index(
        f"{d.name}/helpers.py:3: error[import] importing 'main' raised ValueError: invalid "
        "literal for int() with base 10: 'ten'"
    )
    assert lines[at + 1].strip() == 'LIMIT = int("ten")'
    assert f"{d.name}/main.py:2 → {d.name}/helpers.py:3" in lines[at + 2]
    assert "plugbay info" not in shown.stdout  # a host's advice; validate has no host


def test_the_synthetic_package_the_code_is_imported_under_is_never_shown(
    plugins: PluginFactory,
) -> None:
    """What only importing finds (a name a module makes at run time; a handler made in
    the class body) is said with the plugin's own module names, at its own lines."""
    d = plugins(
        "acme.lazy",
        """
        from plugbay import UtilityPlugin, on_event
        from .names import missing

        class P(UtilityPlugin):
            pass
        """,
    )
    (d / "names.py").write_text("def __getattr__(name):\n    raise AttributeError(name)\n")
    f = one(validate_plugin(d, known=None), "cannot import name 'missing'")
    assert (f.code, f.file, f.line) == ("import", str(d / "main.py"), 3)
    assert "plugbay_plugins" not in f.message and "'names'" in f.message
    assert f.source == "from .names import missing"

    d = plugins(
        "acme.alias",
        """
        from plugbay import UtilityPlugin, on_event

        class P(UtilityPlugin):
            def _saved(self, payload: dict[str, str]) -> None:
                pass

            saved = on_event("notes.saved")(_saved)
        """,
        extra='[events.listens."notes.saved"]\n',
    )
    f = one(validate_plugin(d, known=None), "must take one parameter, 'event'")
    assert (f.file, f.line) == (str(d / "main.py"), line_of(d / "main.py", "def _saved"))
    assert "plugbay_plugins" not in f"{f.file} {f.message}"


def test_every_problem_found_without_running_the_code_is_in_one_run(
    plugins: PluginFactory,
) -> None:
    """A misspelt manifest key, a config entry of no type, a module of the plugin that is
    not there, a library that is not installed and a syntax error: five findings, where
    the first of them alone used to stop validate."""
    d = plugins(
        "acme.many",
        """
        from plugbay import UtilityPlugin
        from . import tools

        class P(UtilityPlugin):
            pass
        """,
        extra='verison = "1.0.1"\n[config.level]\ntype = "str"\n',
    )
    (d / "tools.py").write_text("import json\nfrom .helpers import shout\nimport nowhere_lib_xyz\n")
    (d / "broken.py").write_text("def f(:\n")
    result = validate_plugin(d, known=None)
    manifest, tools = str(d / "plugin.toml"), str(d / "tools.py")
    assert {(f.code, f.file, f.line) for f in errors(result)} == {
        ("manifest", manifest, line_of(d / "plugin.toml", "verison")),
        ("manifest", manifest, line_of(d / "plugin.toml", '"str"')),
        ("import", tools, 2),
        ("import", tools, 3),
        ("syntax", str(d / "broken.py"), 1),
    }
    assert (
        "'.helpers', a module of the plugin that does not exist" in one(result, "helpers").message
    )
    assert "no module named 'nowhere_lib_xyz'" in one(result, "is not installed here").message
    # not a warning besides: each problem is said once
    assert not [
        f for f in result.findings if "nowhere_lib_xyz" in f.message and f.severity != "error"
    ]


def test_imports_that_do_not_run_at_import_are_not_findings(plugins: PluginFactory) -> None:
    d = plugins(
        "acme.optional",
        """
        import sys
        from typing import TYPE_CHECKING
        from plugbay import UtilityPlugin, command

        if TYPE_CHECKING:
            import not_installed_types
        if sys.version_info < (3, 8):
            import not_installed_backport
        try:
            import not_installed_fast
        except ImportError:
            not_installed_fast = None

        class P(UtilityPlugin):
            @command
            def ping(self) -> str:
                import not_installed_later
                return "pong"
        """,
    )
    (d / "script.py").write_text("import not_installed_tool\n")  # never imported by the host
    result = validate_plugin(d, known=None)
    assert result.ok, [f.to_dict() for f in result.errors]


def test_an_absolute_import_of_the_plugins_own_module_says_how_to_import_it(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    d = plugins(
        "acme.own",
        "from plugbay import UtilityPlugin\nimport shared_bits_xyz\n\nclass P(UtilityPlugin):\n"
        "    pass\n",
    )
    (d / "shared_bits_xyz.py").write_text("X = 1\n")
    f = one(validate_plugin(d, known=None, import_check=False), "its own module")
    assert (f.file, f.line) == (str(d / "main.py"), 2)
    assert f.hint and "from . import shared_bits_xyz" in f.hint
    # and the host agrees: it cannot import it either
    (d / "main.py").write_text(
        (d / "main.py").read_text().replace("import shared", "from . import shared")
    )
    assert validate_plugin(d, known=None).ok


# --------------------------------------------------------------------------- [project]


def test_project_version_and_manifest_version_must_agree(tmp_path: Path) -> None:
    package = create_plugin("utility", "acme.ver", tmp_path / "p")
    pyproject = package / "pyproject.toml"
    assert validate_plugin(package, known=[]).ok
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0"', 1))
    project_line = line_of(pyproject, 'version = "0.2.0"')
    manifest_line = line_of(pyproject, 'version = "0.1.0"')
    result = validate_plugin(package, known=[])
    f = one(result, "[project] version is '0.2.0' but the manifest says '0.1.0'")
    assert f.severity == "error" and (f.file, f.line) == (str(pyproject), project_line)
    assert (
        f"[project] version at line {project_line}, [tool.plugbay] version at line "
        f"{manifest_line}" in f.message
    )
    assert f.source == 'version = "0.2.0"'
    shown = plugbay("validate", str(package), cwd=tmp_path)
    assert shown.returncode == 1 and "error[version]" in shown.stdout


def test_a_dynamic_project_version_is_no_version_for_plugbay_build(tmp_path: Path) -> None:
    package = create_plugin("utility", "acme.dyn", tmp_path / "p")
    pyproject = package / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('version = "0.1.0"\n', 'dynamic = ["version"]\n', 1)
    )
    f = one(validate_plugin(package, known=[]), "[project] has no version (it is dynamic)")
    assert f.line == line_of(pyproject, "[project]")


def test_the_entry_point_must_name_the_manifests_entry(tmp_path: Path) -> None:
    package = create_plugin("utility", "acme.ep", tmp_path / "p")
    pyproject = package / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '"acme.ep" = "acme_ep.plugin:EpPlugin"', '"acme.ep" = "acme_ep.plugin:Other"'
        )
    )
    f = one(validate_plugin(package, known=[]), "the entry point for 'acme.ep'")
    assert f.line == line_of(pyproject, "acme_ep.plugin:Other")


# --------------------------------------------------------------------------- config lines


@pytest.mark.parametrize(
    ("entry", "culprit", "message"),
    [
        ('type = "int"', 'type = "int"', "'int' is not a valid config.max-times.type"),
        (
            'type = "integer"\ndefault = "ten"',
            'default = "ten"',
            "a default in [config] does not satisfy its own schema",
        ),
        (
            'type = "string"\npattern = "("',
            'pattern = "("',
            "config key 'max-times' has an invalid schema: pattern is not a regular expression",
        ),
    ],
    ids=["type", "default", "pattern"],
)
def test_a_config_schema_error_is_at_the_config_entrys_line(
    tmp_path: Path, entry: str, culprit: str, message: str
) -> None:
    """In a pyproject.toml the plugin's own ``type`` and ``version`` come first; the
    finding is at the config entry's key, and the host's error too."""
    package = create_plugin("utility", "acme.cfg", tmp_path / "p")
    pyproject = package / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("[tool.plugbay.config.max-times]\n") + len(
        "[tool.plugbay.config.max-times]\n"
    )
    end = text.index("\n\n", start)
    pyproject.write_text(text[:start] + entry + text[end:])
    line = line_of(pyproject, culprit)
    f = one(validate_plugin(package, known=[]), message)
    assert (f.code, f.file, f.line) == ("manifest", str(pyproject), line)
    with pytest.raises(ManifestError) as raised:
        load_manifest(package)
    assert raised.value.where == f"{pyproject}:{line}"


# --------------------------------------------------------------------------- misspelt keys


@pytest.mark.parametrize(
    ("extra", "key", "meant"),
    [
        ('verison = "1.0.1"\n', "verison", "version"),
        ('[config.level]\ntyp = "string"\n', "config.level.typ", "type"),
        ('[config.level]\ntype = "string"\ndefualt = "info"\n', "config.level.defualt", "default"),
        ('[services]\noptinal = { cache = "^1" }\n', "services.optinal", "optional"),
        ('[placement]\nnode-label = { zone = "b" }\n', "placement.node-label", "node-labels"),
        (
            '[events.listens."notes.saved"]\npriorty = 1\n',
            'events.listens."notes.saved".priorty',
            "priority",
        ),
    ],
)
def test_a_misspelt_key_is_named_with_the_key_it_should_be(
    plugins: PluginFactory, extra: str, key: str, meant: str
) -> None:
    d = plugins("acme.typo", extra=extra)
    [f] = errors(validate_plugin(d, known=None))  # not also "missing required field 'type'"
    assert f.message == f"unknown field '{key}'"
    assert f.hint == f"did you mean '{meant}'?"
    assert f.line == line_of(d / "plugin.toml", f"{key.rsplit('.', 1)[-1]} =")


def test_a_key_like_none_lists_the_keys_there_are(plugins: PluginFactory) -> None:
    d = plugins("acme.odd", extra="[resources]\nzzz = 1\n")
    [f] = errors(validate_plugin(d, known=None))
    assert f.message == "unknown field 'resources.zzz'"
    assert f.hint and f.hint.startswith("known keys in [resources]: memory, cpu-seconds")


# --------------------------------------------------------------------------- events


EVENTS_CODE = """
from plugbay import UtilityPlugin, command, on_event

class P(UtilityPlugin):
    @command
    async def save(self) -> None:
        await self.context.events.emit("notes.gone", {"key": "a"})

    @on_event("notes.other")
    def other(self, event: dict[str, str]) -> None:
        pass
"""
EVENTS_MANIFEST = '[events]\nemits = ["notes.saved"]\n[events.listens."notes.heard"]\n'


def test_validate_finds_every_event_problem_the_host_refuses(plugins: PluginFactory) -> None:
    """An undeclared emit (the host refuses it when sent), a handler of an event not
    listened to and a listener without a handler (the host refuses the plugin when it
    loads): all three, without importing the code."""
    d = plugins("acme.events", EVENTS_CODE, extra=EVENTS_MANIFEST)
    result = validate_plugin(d, known=None, import_check=False)
    main, manifest = d / "main.py", d / "plugin.toml"
    assert {(f.code, f.file, f.line, f.message) for f in errors(result)} == {
        (
            "events",
            str(main),
            line_of(main, "notes.gone"),
            "emits the event 'notes.gone', which the manifest does not declare",
        ),
        (
            "events",
            str(main),
            line_of(main, "notes.other"),
            "P handles notes.other, which the manifest does not listen to",
        ),
        (
            "events",
            str(manifest),
            line_of(manifest, "notes.heard"),
            "the manifest listens to notes.heard but P has no handler",
        ),
    }


DEAF = """
from plugbay import UtilityPlugin

class P(UtilityPlugin):
    pass
"""


async def test_validate_says_what_the_host_says_of_the_handlers(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    """The host refuses each of these plugins when it loads it; validate says the same."""
    deaf = plugins("acme.deaf", DEAF, extra='[events.listens."notes.late"]\n')
    stray = plugins(
        "acme.stray",
        EVENTS_CODE.replace('"notes.gone"', '"notes.saved"'),
        extra='[events]\nemits = ["notes.saved"]\n',
    )
    said = {  # read from the code: the import check would say it too, one at a time
        f.message
        for d in (deaf, stray)
        for f in errors(validate_plugin(d, known=None, import_check=False))
    }
    assert said == {
        "the manifest listens to notes.late but P has no handler",
        "P handles notes.other, which the manifest does not listen to",
    }
    async with make_host() as host:
        refused = {host.plugin(pid).reason or "" for pid in ("acme.deaf", "acme.stray")}
    for message in said:  # the host refuses each plugin with validate's words
        assert any(message in reason for reason in refused), refused


def test_a_handler_validate_cannot_read_is_left_to_the_import(plugins: PluginFactory) -> None:
    """A handler that comes from a base class read nowhere here may be any: no "no
    handler" finding is made up (the import check still finds a real one)."""
    d = plugins(
        "acme.based",
        "from plugbay import UtilityPlugin\nfrom json import JSONDecoder\n\n"
        "class P(UtilityPlugin, JSONDecoder):\n    pass\n",
        extra='[events.listens."notes.late"]\n',
    )
    assert validate_plugin(d, known=None, import_check=False).ok
    found = one(validate_plugin(d, known=None), "the manifest listens to notes.late")
    assert found.code == "import"


# --------------------------------------------------------------------------- requirements


def test_a_python_requirement_no_version_can_meet_is_an_error_at_its_line(
    plugins: PluginFactory,
) -> None:
    """``humanize>=4,<4``: uv would only say it found no version; validate says the range
    is the mistake, at the requirement's own line, and names the clauses that clash."""
    d = plugins(
        "acme.humane",
        extra='python-dependencies = [\n    "attrs>=21",\n    "humanize>=4,<4",\n]\n',
    )
    shown = plugbay("validate", d.name, cwd=plugins.root)
    assert shown.returncode == 1, shown.stdout
    toml = d / "plugin.toml"
    f = one(validate_plugin(d, known=None), "humanize>=4,<4")
    assert (f.severity, f.code) == ("error", "python-dependency")
    assert (f.file, f.line) == (str(toml), line_of(toml, '"humanize>=4,<4"'))
    assert "its range is empty: '>=4' and '<4' leave no version between them" in f.message
    assert f.hint is not None and f"correct the range in {toml}" in f.hint
    assert f"{d.name}/plugin.toml:{f.line}: error[python-dependency]" in shown.stdout


def test_the_packages_of_the_hosts_runtime_need_no_requirement(plugins: PluginFactory) -> None:
    """Every worker imports the host's msgspec, packaging and typing_extensions (they are
    plugbay's runtime): importing them is no undeclared import; a requirement on one
    that excludes the host's version is an error, as install refuses it."""
    import importlib.metadata

    from plugbay.pdk._analysis.requirements import HOST_PROVIDED
    from plugbay.runtime.environments import RUNTIME_PACKAGES

    assert set(HOST_PROVIDED) == set(RUNTIME_PACKAGES) - {"plugbay"}
    d = plugins(
        "acme.frames",
        """
        import msgspec
        import typing_extensions
        from packaging.version import Version
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def ping(self) -> str:
                return msgspec.json.encode(str(Version("1"))).decode()
        """,
    )
    result = validate_plugin(d, known=None)
    assert result.ok and not result.warnings, [f.to_dict() for f in result.findings]
    (d / "plugin.toml").write_text(
        (d / "plugin.toml").read_text() + 'python-dependencies = ["msgspec<0.1"]\n'
    )
    f = one(validate_plugin(d, known=None), "msgspec<0.1")
    have = importlib.metadata.version("msgspec")
    assert f.severity == "error" and f"excludes this host's msgspec {have}" in f.message
