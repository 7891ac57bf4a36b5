"""``plugbay validate`` of one plugin sees a conflict with another plugin of the plugins
directory it is pointed at: a host loads one version of each plugin for all that need it,
so two plugins whose ranges each resolve alone may still not load together."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from plugbay.api.errors import DuplicatePluginError
from plugbay.model.discover import discover
from plugbay.model.registry import PluginRegistry
from plugbay.model.versions import Version
from tests._cli import PLUGBAY, cli_env, plugbay, run_cli
from tests.test_loader import fake_distribution


def _plugin(directory: Path, pid: str, version: str, needs_base: str | None = None) -> Path:
    directory.mkdir(parents=True)
    extra = f'[dependencies]\n"acme.base" = "{needs_base}"\n' if needs_base else ""
    (directory / "plugin.toml").write_text(
        f'id = "{pid}"\nversion = "{version}"\ntype = "utility"\nentry = "main:P"\n{extra}'
    )
    (directory / "main.py").write_text(
        "from plugbay import UtilityPlugin\n\n\nclass P(UtilityPlugin):\n    pass\n"
    )
    return directory


def _plugins_dir(tmp_path: Path) -> Path:
    """acme.base 1.0.0 and 2.0.0, and acme.m, which needs acme.base ^1."""
    plugins = tmp_path / "plugins"
    _plugin(plugins / "base1", "acme.base", "1.0.0")
    _plugin(plugins / "base2", "acme.base", "2.0.0")
    _plugin(plugins / "m", "acme.m", "1.0.0", "^1")
    return plugins


def _validate(path: Path, cwd: Path) -> list[dict[str, Any]]:
    done = plugbay("validate", str(path), "--no-import", "--json", cwd=cwd)
    assert done.returncode == 1, (done.stdout, done.stderr)
    [result] = json.loads(done.stdout)
    return [f for f in result["findings"] if f["severity"] == "error"]


def test_a_plugin_the_host_would_leave_out_for_another_is_an_error(tmp_path: Path) -> None:
    """`validate plugins/v` said ok, and `plugbay run` then left acme.v out ("'acme.m'
    1.0.0 requires 'acme.base' ^1 and 'acme.v' 1.0.0 requires 'acme.base' ^2")."""
    plugins = _plugins_dir(tmp_path)
    v = _plugin(plugins / "v", "acme.v", "1.0.0", "^2")
    [error] = _validate(v, tmp_path)
    assert error["code"] == "dependency" and error["file"].endswith("v/plugin.toml")
    assert error["message"] == (
        "beside the plugins the host knows, it cannot be loaded: 'acme.m' 1.0.0 requires "
        "'acme.base' ^1 and 'acme.v' 1.0.0 requires 'acme.base' ^2; versions found: 2.0.0, "
        "1.0.0 — none satisfies every requirement"
    )
    assert "a host loads one version of each plugin for all that need it" in error["hint"]


def test_a_plugin_that_would_push_another_out_names_both(tmp_path: Path) -> None:
    """acme.b sorts before acme.m: the host keeps acme.b and leaves acme.m out, which a
    validate of acme.b (outside the plugins directory) did not say at all."""
    _plugins_dir(tmp_path)
    b = _plugin(tmp_path / "new" / "b", "acme.b", "1.0.0", "^2")
    [error] = _validate(b, tmp_path)
    assert error["message"].startswith(
        "beside it, 'acme.m', which the host knows, could no longer be loaded: 'acme.b' 1.0.0 "
        "requires 'acme.base' ^2 and 'acme.m' 1.0.0 requires 'acme.base' ^1"
    )


def test_plugins_that_agree_validate(tmp_path: Path) -> None:
    plugins = _plugins_dir(tmp_path)
    fits = _plugin(plugins / "w", "acme.w", "1.0.0", ">=1")
    done = plugbay("validate", str(fits), "--no-import", cwd=tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)


def test_one_process_validating_again_after_an_edit_sees_the_edit(tmp_path: Path) -> None:
    """The analyzer keeps its last resolution (each plugin of a directory resolves the
    same set): an editor's validate-on-save, in one process, must not be answered from it."""
    from plugbay.pdk.analyzer import known_plugins, validate_plugin

    plugins = _plugins_dir(tmp_path)
    v = _plugin(plugins / "v", "acme.v", "1.0.0", "^1")

    def errors() -> list[str]:
        known = known_plugins([plugins])
        result = validate_plugin(v, known=known, import_check=False)
        return [f.message for f in result.findings if f.severity == "error"]

    assert errors() == [] and errors() == []
    (v / "plugin.toml").write_text((v / "plugin.toml").read_text().replace('"^1"', '"^2"'))
    assert any("cannot be loaded" in message for message in errors())


def _given(tmp_path: Path) -> Path:
    """Plugins outside any plugins directory: acme.base 1.0.0 and 2.0.0, acme.a needing
    acme.base ^1 and acme.v needing acme.base ^2."""
    given = tmp_path / "given"
    _plugin(given / "base1", "acme.base", "1.0.0")
    _plugin(given / "base2", "acme.base", "2.0.0")
    _plugin(given / "a", "acme.a", "1.0.0", "^1")
    _plugin(given / "v", "acme.v", "1.0.0", "^2")
    return given


def test_a_dependency_another_given_path_provides_is_not_missing(tmp_path: Path) -> None:
    """`validate given/a given/base1` said acme.base "is not a plugin the host knows",
    though the host the two are validated for loads it beside acme.a."""
    given = _given(tmp_path)
    done = plugbay("validate", str(given / "a"), str(given / "base1"), "--no-import", cwd=tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "not a plugin the host knows" not in done.stdout
    assert "ok acme.a 1.0.0" in done.stdout and "ok acme.base 1.0.0" in done.stdout


def test_given_paths_that_cannot_load_together_are_errors_naming_both(tmp_path: Path) -> None:
    """Given side by side outside the plugins directory, acme.a and acme.v were each
    checked alone (or not at all): a host on all four loads one acme.base, so one of them."""
    given = _given(tmp_path)
    paths = [str(given / name) for name in ("a", "v", "base1", "base2")]
    done = plugbay("validate", *paths, "--no-import", "--json", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    errors = {
        r["path"].rsplit("/", 1)[-1]: [
            f["message"] for f in r["findings"] if f["severity"] == "error"
        ]
        for r in json.loads(done.stdout)
    }
    conflict = (
        "'acme.a' 1.0.0 requires 'acme.base' ^1 and 'acme.v' 1.0.0 requires 'acme.base' ^2; "
        "versions found: 2.0.0, 1.0.0 — none satisfies every requirement"
    )
    assert errors["v"] == [f"beside the plugins the host knows, it cannot be loaded: {conflict}"]
    assert errors["a"] == [
        f"beside it, 'acme.v', which the host knows, could no longer be loaded: {conflict}"
    ]
    # a host on the four takes acme.base 1.0.0 (for acme.a, which sorts first)
    assert [message.rsplit(": ", 1)[-1] for message in errors["base2"]] == [
        f"it would take 1.0.0 ({given / 'base1'})"
    ]


def test_many_given_paths_resolve_together_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty plugins given at once are one set a host loads: resolved together once for
    all of them, not once per plugin."""
    from plugbay.pdk._analysis import together
    from plugbay.pdk.analyzer import validate_plugins

    given = _given(tmp_path)
    paths = [given / "base1", given / "a"]
    paths += [_plugin(given / f"w{i}", f"acme.w{i}", "1.0.0", ">=1") for i in range(40)]
    resolutions: list[int] = []
    resolved = together._resolved_failures

    def counted(manifests: Any) -> Any:
        resolutions.append(len(manifests))
        return resolved(manifests)

    monkeypatch.setattr(together, "_resolved_failures", counted)
    results = validate_plugins(paths, known=[], import_check=False)
    assert [r.errors for r in results] == [[]] * len(paths)
    assert resolutions == [len(paths)]


def test_the_analyzer_says_it_checks_plugins_together() -> None:
    """Its docstring, the list of what ``plugbay validate`` checks, did not name the
    check of a plugin beside the others a host loads with it."""
    from plugbay.pdk import analyzer

    said = " ".join((analyzer.__doc__ or "").split())
    assert "loads together with every plugin the host knows" in said
    assert "validated in one :func:`validate_plugins` call" in said


def test_two_versions_of_one_id_given_together_say_which_a_host_takes(tmp_path: Path) -> None:
    """`validate given/base1 given/base2` said ok twice, though a host loads one version
    of acme.base: the newest, unless another plugin given needs the older one."""
    given = _given(tmp_path)
    done = plugbay("validate", str(given / "base1"), str(given / "base2"), "--no-import",
                   "--json", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    base1, base2 = json.loads(done.stdout)
    [error] = base1["findings"]
    assert error["message"] == (
        f"beside the plugins given with it, it cannot be loaded: 'acme.base' 1.0.0 "
        f"({given / 'base1'}) and 2.0.0 ({given / 'base2'}) are given together, and a host "
        f"loads one version of each plugin: it would take 2.0.0 ({given / 'base2'})"
    )
    assert error["file"].endswith("base1/plugin.toml") and error["line"] == 2
    assert base2["findings"] == []
    # acme.a needs acme.base ^1: a host on the three takes 1.0.0, leaving 2.0.0 out
    paths = [str(given / name) for name in ("a", "base1", "base2")]
    done = plugbay("validate", *paths, "--no-import", "--json", cwd=tmp_path)
    a, base1, base2 = json.loads(done.stdout)
    assert a["findings"] == base1["findings"] == []
    assert [f["message"].rsplit(": ", 1)[-1] for f in base2["findings"]] == [
        f"it would take 1.0.0 ({given / 'base1'})"
    ]


def test_each_plugin_given_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`validate a v base1 base2` parsed each manifest twice: once to resolve the plugins
    given together, once more for the plugin's own checks."""
    from plugbay.model import manifest as manifest_module
    from plugbay.pdk.analyzer import validate_plugins

    given = _given(tmp_path)
    paths = [given / name for name in ("a", "v", "base1", "base2")]
    parsed: Counter[str] = Counter()
    parse = manifest_module.parse_manifest

    def counted(text: str, **options: Any) -> Any:
        parsed[options["path"].parent.name] += 1
        return parse(text, **options)

    monkeypatch.setattr(manifest_module, "parse_manifest", counted)
    results = validate_plugins(paths, known=[], import_check=False)
    assert parsed == {"a": 1, "v": 1, "base1": 1, "base2": 1}
    # read once, still checked together: acme.a and acme.v cannot load side by side
    a, v = results[:2]
    assert "could no longer be loaded" in a.errors[0].message
    assert "cannot be loaded" in v.errors[0].message


def test_two_copies_of_one_version_given_say_which_a_host_takes(tmp_path: Path) -> None:
    """`validate copy1 copy2` of one acme.base 1.0.0 said ok twice, though a host that
    finds both loads the first and refuses the other as provided twice."""
    given = _given(tmp_path)
    copy = _plugin(tmp_path / "elsewhere" / "base1", "acme.base", "1.0.0")
    first, second = given / "base1", copy
    said = (
        f"'acme.base' 1.0.0 is given twice: by {first} and by {second}, the same id and "
        "version; a host that finds both loads the one it finds first and refuses the "
        f"other as provided twice: it would load {first}, given first, and refuse this one"
    )
    done = plugbay("validate", str(first), str(second), "--no-import", "--json", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    taken, refused = json.loads(done.stdout)
    assert taken["ok"] and taken["findings"] == []
    [error] = refused["findings"]
    assert error["message"] == said and error["severity"] == "error"
    assert error["file"] == str(second / "plugin.toml") and error["line"] == 1
    assert error["hint"].startswith("keep one copy of 'acme.base' 1.0.0: remove this one")
    text = plugbay("validate", str(first), str(second), "--no-import", cwd=tmp_path)
    assert text.returncode == 1 and said in " ".join(text.stdout.split())
    assert f"invalid acme.base 1.0.0 (utility) — {second}" in text.stdout
    # what it says is what a host does: of two directories declaring it, the first is used
    registry = PluginRegistry(Version.parse("99.0.0"))
    manifests = discover([first, second], entry_points=False).manifests
    registry.register(manifests[0])
    with pytest.raises(DuplicatePluginError, match="provided twice"):
        registry.register(manifests[1])
    assert [m.root for m in registry.manifests()] == [first]
    # one path given twice is one plugin, not two copies
    again = plugbay("validate", str(first), str(first), "--no-import", cwd=tmp_path)
    assert again.returncode == 0, (again.stdout, again.stderr)


def test_a_copy_of_a_plugin_of_the_plugins_directory_is_said(tmp_path: Path) -> None:
    """`validate elsewhere/base1` of acme.base 1.0.0, which plugins/base1 holds too, said
    ok, though a host given the plugins directory and that path finds the directory's
    copy first and refuses the given one as provided twice."""
    plugins = _plugins_dir(tmp_path)
    copy = _plugin(tmp_path / "elsewhere" / "base1", "acme.base", "1.0.0")
    found = plugins / "base1"
    shown = Path("plugins", "base1")  # as the host finds it: ./plugins unless told
    done = plugbay("validate", str(copy), "--no-import", "--json", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    [result] = json.loads(done.stdout)
    [error] = result["findings"]
    assert error["message"] == (
        f"'acme.base' 1.0.0 is given twice: by {shown} (in the plugins directory plugins) "
        f"and by {copy}, the same id and version; a host that finds both loads the one it "
        "finds first and refuses the other as provided twice: given the plugins directory "
        f"and this path (--plugins plugins --plugins {copy}), it would load {shown}, found "
        "first, and refuse this one"
    )
    assert error["file"] == str(copy / "plugin.toml") and error["line"] == 1
    assert error["hint"].startswith(
        f"keep one copy of 'acme.base' 1.0.0: remove this one or {shown}"
    )
    # what it says is what a host does: the plugins directory, then the path
    registry = PluginRegistry(Version.parse("99.0.0"))
    manifests = discover([plugins, copy], entry_points=False).manifests
    *before, last = manifests
    for manifest in before:
        registry.register(manifest)
    assert last.root == copy
    with pytest.raises(DuplicatePluginError, match="provided twice"):
        registry.register(last)
    assert [m.root for m in registry.manifests() if m.id == "acme.base"] == [
        found,
        plugins / "base2",
    ]
    # the plugin of the directory itself, given alone or after the copy, is the one taken
    assert plugbay("validate", str(found), "--no-import", cwd=tmp_path).returncode == 0
    both = plugbay("validate", str(copy), str(found), "--no-import", "--json", cwd=tmp_path)
    taken, refused = sorted(json.loads(both.stdout), key=lambda r: r["path"] != str(found))
    assert taken["ok"] and not refused["ok"]
    # another version beside the directory's is no copy
    other = _plugin(tmp_path / "elsewhere" / "base3", "acme.base", "3.0.0")
    done = plugbay("validate", str(other), "--no-import", "--json", cwd=tmp_path)
    assert "given twice" not in done.stdout


def test_a_copy_names_the_plugins_directory_the_host_is_given(tmp_path: Path) -> None:
    """The message said `--plugins DIR --plugins PATH`, a placeholder, where it knows the
    directory: the --plugins given (here two, in order), or ./plugins by default."""
    plugins = _plugins_dir(tmp_path)
    more = tmp_path / "more"
    copy = _plugin(more / "base1", "acme.base", "1.0.0")
    elsewhere = _plugin(tmp_path / "elsewhere" / "base1", "acme.base", "1.0.0")
    dirs = ("--plugins", str(plugins), "--plugins", str(more))
    [error] = _validate_with(elsewhere, tmp_path, *dirs)
    assert error["message"] == (
        f"'acme.base' 1.0.0 is given twice: by {plugins / 'base1'} (in the plugins directory "
        f"{plugins}) and by {elsewhere}, the same id and version; a host that finds both "
        "loads the one it finds first and refuses the other as provided twice: given the "
        f"plugins directories and this path (--plugins {plugins} --plugins {more} --plugins "
        f"{elsewhere}), it would load {plugins / 'base1'}, found first, and refuse this one"
    )
    # a copy in the later of the two directories: the earlier one's is taken
    [error] = _validate_with(copy, tmp_path, *dirs)
    assert error["message"].endswith(
        "refuses the other as provided twice: given its plugins directories in order "
        f"(--plugins {plugins} --plugins {more}), it would load {plugins / 'base1'}, in "
        f"{plugins}, found first, and refuse this one"
    )
    registry = PluginRegistry(Version.parse("99.0.0"))
    *before, last = discover([plugins, more], entry_points=False).manifests
    for manifest in before:
        registry.register(manifest)
    with pytest.raises(DuplicatePluginError, match="provided twice"):
        registry.register(last)


def test_two_copies_in_one_plugins_directory_say_the_one_a_host_finds_first(
    tmp_path: Path,
) -> None:
    """Of plugins/base1 and plugins/copy, one acme.base 1.0.0, `validate plugins/copy`
    said a host 'given the plugins directory and this path (--plugins DIR --plugins
    plugins/copy)' takes base1: the path is in the directory; a host on it takes the copy
    its walk finds first, which the message now names as the one taken."""
    plugins = _plugins_dir(tmp_path)
    copy = _plugin(plugins / "copy", "acme.base", "1.0.0")
    shown = Path("plugins")
    for given in ([copy], [copy, plugins / "base1"]):
        done = plugbay("validate", *map(str, given), "--no-import", "--json", cwd=tmp_path)
        assert done.returncode == 1, (done.stdout, done.stderr)
        refused, *taken = json.loads(done.stdout)
        [error] = refused["findings"]
        assert error["message"] == (
            f"'acme.base' 1.0.0 is given twice: by {shown / 'base1'} and by {copy}, both in "
            f"the plugins directory {shown}, the same id and version; a host that finds both "
            "loads the one it finds first and refuses the other as provided twice: on the "
            f"plugins directory {shown}, it would load {shown / 'base1'}, found first (it "
            "reads each folder of the directory in order of name), and refuse this one"
        )
        assert [t["ok"] for t in taken] == [True] * len(taken)
    # what it says is what a host does
    base = ("acme.base", "1.0.0")
    registry = PluginRegistry(Version.parse("99.0.0"))
    for manifest in discover([plugins], entry_points=False).manifests:
        with contextlib.suppress(DuplicatePluginError):
            registry.register(manifest)
    assert [m.root for m in registry.manifests() if (m.id, str(m.version)) == base] == [
        plugins / "base1"
    ]


def test_a_copy_of_an_installed_plugin_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`validate work/ep` of acme.ep 1.0.0, which the installed package acme-ep provides
    too (its `plugbay.plugins` entry point), said ok, though a host given that path finds
    it before the entry points and refuses the package's copy as provided twice. The
    package is installed as pip leaves one, a dist-info on a temporary sys.path entry,
    not into the environment."""
    site = tmp_path / "site"
    fake_distribution(site)
    copy = tmp_path / "work" / "ep"
    (copy / "acme_ep").mkdir(parents=True)
    shutil.copy(site / "acme_ep" / "plugin.toml", copy / "plugin.toml")
    shutil.copy(site / "acme_ep" / "__init__.py", copy / "acme_ep" / "__init__.py")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    argv = [*PLUGBAY, "validate", str(copy), "--no-import", "--json"]
    done = run_cli(argv, cwd=tmp_path, env=cli_env({"PYTHONPATH": path}))
    assert done.returncode == 1, (done.stdout, done.stderr)
    [result] = json.loads(done.stdout)
    [error] = result["findings"]
    assert error["message"] == (
        f"'acme.ep' 1.0.0 is given twice: by {copy} and by the installed package acme-ep "
        f"({site / 'acme_ep'}), the same id and version; a host that finds both loads the "
        "one it finds first and refuses the other as provided twice: given the plugins "
        f"directory and this path (--plugins plugins --plugins {copy}), it would load this "
        "one, found first (its plugins directories before the installed packages), and "
        "refuse the one of package acme-ep"
    )
    assert error["file"] == str(copy / "plugin.toml") and error["line"] == 1
    assert error["hint"].startswith("keep one copy of 'acme.ep' 1.0.0: uninstall acme-ep")
    # what it says is what a host does: the path, then the entry points
    monkeypatch.syspath_prepend(str(site))
    path_copy, installed = discover([copy], entry_points=True).manifests
    registry = PluginRegistry(Version.parse("99.0.0"))
    registry.register(path_copy)
    with pytest.raises(DuplicatePluginError, match="provided twice"):
        registry.register(installed)
    # the installed plugin itself, validated where it is installed, is no copy
    argv = [*PLUGBAY, "validate", str(site / "acme_ep"), "--no-import", "--json"]
    done = run_cli(argv, cwd=tmp_path, env=cli_env({"PYTHONPATH": path}))
    assert "given twice" not in done.stdout, done.stdout


def _validate_with(path: Path, cwd: Path, *options: str) -> list[dict[str, Any]]:
    done = plugbay("validate", str(path), *options, "--no-import", "--json", cwd=cwd)
    assert done.returncode == 1, (done.stdout, done.stderr)
    [result] = json.loads(done.stdout)
    return [f for f in result["findings"] if f["severity"] == "error"]


async def test_two_copies_in_one_plugins_directory_name_the_one_discovery_finds_first(
    tmp_path: Path,
) -> None:
    """Of plugins/a/x and plugins/a-b/x, one acme.base 1.0.0, a host takes a/x (it reads
    each folder by name: `a` before `a-b`), though "a-b/x" sorts before "a/x" as a string:
    the words said the one 'whose path sorts first'. They name the one a host loads."""
    from plugbay.runtime.host import Host

    plugins = tmp_path / "plugins"
    first = _plugin(plugins / "a" / "x", "acme.base", "1.0.0")
    later = _plugin(plugins / "a-b" / "x", "acme.base", "1.0.0")
    assert str(later) < str(first)
    host = Host(plugins, state_dir=tmp_path / "state", entry_points=False, inline=["*"])
    await host.start()
    try:
        record = host.plugin("acme.base")
        assert record.manifest is not None
        loaded = record.manifest.root
    finally:
        await host.stop()
    assert loaded == first
    options = ("--plugins", str(plugins), "--no-import", "--json")
    for given in ([later, first], [first, later]):
        done = plugbay("validate", *map(str, given), *options, cwd=tmp_path)
        assert done.returncode == 1, (done.stdout, done.stderr)
        results = {Path(r["path"]): r for r in json.loads(done.stdout)}
        assert results[loaded]["ok"] and not results[later]["ok"]
        [error] = results[later]["findings"]
        assert error["message"].endswith(
            f"provided twice: on the plugins directory {plugins}, it would load {loaded}, "
            "found first (it reads each folder of the directory in order of name), and "
            "refuse this one"
        )
    # a library caller's known plugins in another order: still discovery's answer
    from plugbay.pdk.analyzer import known_plugins, validate_plugins

    known = known_plugins([plugins], entry_points=False)[::-1]
    [result] = validate_plugins([later], known=known, import_check=False, plugin_dirs=[plugins])
    assert f"it would load {loaded}, found first" in result.errors[0].message
    [result] = validate_plugins([first], known=known, import_check=False, plugin_dirs=[plugins])
    assert result.ok, result.findings


def test_a_copy_said_to_a_caller_not_naming_the_plugins_directory_makes_none_up(
    tmp_path: Path,
) -> None:
    """`validate_plugins(...)` without ``plugin_dirs`` said a host given '--plugins DIR
    --plugins PATH' would take the directory's copy: DIR is no directory of the user's.
    The words name both paths and no option made up."""
    from plugbay.pdk.analyzer import known_plugins, validate_plugins

    plugins = _plugins_dir(tmp_path)
    copy = _plugin(tmp_path / "elsewhere" / "base1", "acme.base", "1.0.0")
    known = known_plugins([plugins], entry_points=False)
    [result] = validate_plugins([copy], known=known, import_check=False)
    [error] = result.errors
    assert "DIR" not in error.message and "--plugins" not in error.message
    assert error.message == (
        f"'acme.base' 1.0.0 is given twice: by {plugins / 'base1'} (in its plugins "
        f"directories) and by {copy}, the same id and version; a host that finds both loads "
        "the one it finds first and refuses the other as provided twice: given the plugins "
        f"directory and this path, it would load {plugins / 'base1'}, found first, and "
        "refuse this one"
    )
    assert error.hint is not None
    assert error.hint.startswith(
        f"keep one copy of 'acme.base' 1.0.0: remove this one or {plugins / 'base1'}"
    )


def test_the_version_a_host_takes_of_two_given_is_not_blamed_for_others_conflict(
    tmp_path: Path,
) -> None:
    """`validate_plugins([a, v, base1, base2], known=[])`: acme.a (^1) and acme.v (^2)
    cannot load together, and each says so; base1, which only provides the 1.0.0 acme.a
    needs, was blamed too ("beside it, 'acme.v' ... could no longer be loaded", at no
    line), though it is the acme.base a host takes and nothing of its own crosses."""
    from plugbay.pdk.analyzer import validate_plugins

    given = _given(tmp_path)
    paths = [given / name for name in ("a", "v", "base1", "base2")]
    a, v, base1, base2 = validate_plugins(paths, known=[], import_check=False)
    assert base1.ok and base1.findings == []
    assert "'acme.v', which the host knows, could no longer be loaded" in a.errors[0].message
    assert v.errors[0].message.startswith("beside the plugins the host knows, it cannot be")
    assert [e.message.rsplit(": ", 1)[-1] for e in base2.errors] == [
        f"it would take 1.0.0 ({given / 'base1'})"
    ]
