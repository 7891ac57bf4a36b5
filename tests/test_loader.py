"""Discovery from directories and entry points, and imports into fresh namespaces."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from plugbay.api.errors import PluginLoadError
from plugbay.isolation.loading import NAMESPACE, import_plugin, unload_code
from plugbay.model.discover import discover_directory, discover_entry_points
from plugbay.model.manifest import load_manifest
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

PLUGIN_CODE = """
from plugbay import UtilityPlugin, command

class EpPlugin(UtilityPlugin):
    @command
    def where(self) -> str:
        return __name__
"""


def fake_distribution(site: Path, *, editable_source: Path | None = None) -> None:
    """A real installed distribution (dist-info on sys.path), as pip would leave it."""
    dist = site / "acme_ep-1.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-ep\nVersion: 1.0.0\n")
    (dist / "entry_points.txt").write_text("[plugbay.plugins]\nacme.ep = acme_ep:EpPlugin\n")
    files = ["acme_ep-1.0.0.dist-info/METADATA", "acme_ep-1.0.0.dist-info/entry_points.txt"]
    if editable_source is None:
        pkg = site / "acme_ep"
        pkg.mkdir()
        (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN_CODE))
        (pkg / "plugin.toml").write_text(
            'id = "acme.ep"\nversion = "1.0.0"\ntype = "utility"\nentry = "acme_ep:EpPlugin"\n'
        )
        files += ["acme_ep/__init__.py", "acme_ep/plugin.toml"]
    else:
        (dist / "direct_url.json").write_text(
            f'{{"url": "file://{editable_source}", "dir_info": {{"editable": true}}}}'
        )
        files.append("acme_ep-1.0.0.dist-info/direct_url.json")
    (dist / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def test_directory_discovery_is_recursive_and_reports_problems(plugins: PluginFactory) -> None:
    plugins("acme.a", dirname="core/a")
    plugins("acme.b", dirname="deep/er/b")
    (plugins.root / "junk").mkdir()
    bad = plugins.root / "bad"
    bad.mkdir()
    (bad / "plugin.toml").write_text("id = ")
    found = discover_directory(plugins.root)
    assert sorted(m.id for m in found.manifests) == ["acme.a", "acme.b"]
    assert len(found.problems) == 1 and "not valid TOML" in str(found.problems[0])


def test_missing_plugins_directory_is_a_clear_problem(tmp_path: Path) -> None:
    found = discover_directory(tmp_path / "nope")
    assert str(found.problems[0]) == (
        f"the plugins directory {tmp_path / 'nope'} does not exist: no plugin is found there "
        f"(at {tmp_path / 'nope'}). "
        "create it, or point plugbay at another one with --plugins DIR"
    )


async def test_entry_point_plugin_with_packaged_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    fake_distribution(site)
    monkeypatch.syspath_prepend(str(site))
    found = discover_entry_points()
    assert [m.id for m in found.manifests] == ["acme.ep"]
    assert found.manifests[0].origin == "entry-point"
    assert found.manifests[0].distribution == "acme-ep"
    async with Host(None, state_dir=tmp_path / "state", entry_points=True) as host:
        assert await host.call("acme.ep", "where") == "acme_ep"
    sys.modules.pop("acme_ep", None)


async def test_entry_point_plugin_from_an_editable_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "project"
    (source / "acme_ep").mkdir(parents=True)
    (source / "acme_ep" / "__init__.py").write_text(textwrap.dedent(PLUGIN_CODE))
    (source / "pyproject.toml").write_text(
        '[project]\nname = "acme-ep"\nversion = "1.0.0"\n\n'
        '[project.entry-points."plugbay.plugins"]\n"acme.ep" = "acme_ep:EpPlugin"\n\n'
        '[tool.plugbay]\nid = "acme.ep"\nversion = "1.0.0"\ntype = "utility"\nentry = "acme_ep:EpPlugin"\n'
    )
    site = tmp_path / "site"
    fake_distribution(site, editable_source=source)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(source))
    found = discover_entry_points()
    assert [(m.id, m.path) for m in found.manifests] == [("acme.ep", source / "pyproject.toml")]
    sys.modules.pop("acme_ep", None)


def test_entry_point_without_manifest_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    fake_distribution(site)
    (site / "acme_ep" / "plugin.toml").unlink()
    record = site / "acme_ep-1.0.0.dist-info" / "RECORD"
    record.write_text(record.read_text().replace("acme_ep/plugin.toml,,\n", ""))
    monkeypatch.syspath_prepend(str(site))
    found = discover_entry_points()
    assert not found.manifests
    assert str(found.problems[0]) == (
        "entry point 'acme.ep = acme_ep:EpPlugin' has no manifest (at distribution acme-ep). "
        "ship a plugin.toml inside the package, or build with 'plugbay build' which adds it"
    )


def test_each_load_gets_a_fresh_namespace_and_unload_removes_it(plugins: PluginFactory) -> None:
    d = plugins("acme.ns", "from .impl import P\n")
    (d / "impl.py").write_text(
        "from plugbay import UtilityPlugin, command\nCOUNT = [0]\n\nclass P(UtilityPlugin):\n"
        "    @command\n    def ping(self) -> str:\n        return 'x'\n"
    )
    manifest = load_manifest(d)
    first, second = import_plugin(manifest), import_plugin(manifest)
    assert first.namespace != second.namespace
    assert first.cls is not second.cls
    assert first.namespace is not None and second.namespace is not None
    assert unload_code(first.namespace) == 3
    assert unload_code(second.namespace) == 3
    assert not [m for m in sys.modules if m.startswith(f"{NAMESPACE}.acme_ns")]


def test_failed_import_leaves_no_modules_behind(plugins: PluginFactory) -> None:
    d = plugins("acme.fail", "from . import helper\nraise ImportError('late')\n")
    (d / "helper.py").write_text("X = 1\n")
    before = set(sys.modules)
    with pytest.raises(PluginLoadError, match="importing 'main' raised ImportError: late"):
        import_plugin(load_manifest(d))
    assert set(sys.modules) - before == set()


ENTRY = """
import sys
from plugbay import UtilityPlugin, command
from . import helper

class P(UtilityPlugin):
    @command
    def ping(self) -> str:
        return helper.NAME
"""


def test_an_entry_file_loads_as_the_import_system_would(plugins: PluginFactory) -> None:
    """Loaded from its file (isolation.loading._entry_file): the module a normal import
    makes, with its spec, loader and file, its parent package's attribute, and
    relative imports that work."""
    d = plugins("acme.entry", ENTRY)
    (d / "helper.py").write_text("NAME = __name__\n")
    loaded = import_plugin(load_manifest(d))
    try:
        module = sys.modules[loaded.cls.__module__]
        package = sys.modules[str(loaded.namespace)]
        assert module.__name__ == f"{loaded.namespace}.main"
        assert module.__spec__ is not None and module.__spec__.origin == str(d / "main.py")
        assert module.__file__ == str(d / "main.py")
        assert type(module.__loader__).__name__ == "SourceFileLoader"
        assert module.__package__ == loaded.namespace
        assert package.main is module
        assert f"{loaded.namespace}.helper" == module.helper.NAME  # a relative import
    finally:
        unload_code(str(loaded.namespace))


def test_a_package_of_the_entry_modules_name_wins_over_its_file(plugins: PluginFactory) -> None:
    """As for the import system, a directory ``main/`` with ``__init__.py`` is the
    module ``main``, whatever ``main.py`` holds."""
    d = plugins("acme.shadowed", "raise RuntimeError('main.py must not be imported')\n")
    (d / "main").mkdir()
    (d / "main" / "__init__.py").write_text(
        "from plugbay import UtilityPlugin\n\nWHO = 'package'\n\nclass P(UtilityPlugin):\n    pass\n"
    )
    loaded = import_plugin(load_manifest(d))
    try:
        assert sys.modules[loaded.cls.__module__].WHO == "package"
    finally:
        unload_code(str(loaded.namespace))


def test_an_entry_file_that_fails_leaves_no_module_behind(plugins: PluginFactory) -> None:
    d = plugins("acme.broken", "import json\nraise ValueError('at import')\n")
    before = set(sys.modules)
    with pytest.raises(PluginLoadError, match="ValueError: at import"):
        import_plugin(load_manifest(d))
    assert set(sys.modules) - before == set()


@pytest.mark.parametrize(
    ("code", "type_", "message"),
    [
        (
            "from plugbay import UtilityPlugin\nclass P(UtilityPlugin):\n    pass\n",
            "system",
            "the manifest says type 'system' but P is not a SystemPlugin",
        ),
        (
            "from plugbay import IntegrationPlugin\nclass P(IntegrationPlugin):\n    pass\n",
            "integration",
            "P does not implement connect, disconnect, is_connected, send_message",
        ),
        (
            "from plugbay import UtilityPlugin\nclass P(UtilityPlugin):\n    version = '9.9.9'\n",
            "utility",
            "P.version is '9.9.9' but the manifest says '1.0.0'",
        ),
        ("P = 42\n", "utility", "entry 'main:P' is int, not a Plugin subclass"),
    ],
)
def test_class_must_honour_its_manifest(
    plugins: PluginFactory, code: str, type_: str, message: str
) -> None:
    d = plugins("acme.k", code, type=type_)
    with pytest.raises(PluginLoadError) as err:
        import_plugin(load_manifest(d))
    assert message in str(err.value)
