"""An error refusing a plugin's Python requirement names the manifest's file and the line
that holds it (``runtime/env_where.py``), at install, load and reload, as ``plugbay
validate`` does: the author goes straight to the line to change.

Real uv, offline from a temporary ``--find-links`` directory; a real ``plugbay run``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbay.model.manifest import load_manifest
from plugbay.runtime.environments import (
    EnvironmentBuildError,
    EnvironmentStore,
    IndexSettings,
    check_fits_host,
)
from plugbay.runtime.host import HOST_VERSION
from tests._cli import plugbay
from tests._running import plugbay_run
from tests._wheels import libdemo
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow

CODE = """
from plugbay import UtilityPlugin, command


class P(UtilityPlugin):
    @command
    def version(self) -> str:
        import libdemo

        return libdemo.VERSION
"""


def _requirements(*texts: str) -> str:
    """``python-dependencies`` as authors write a long list: one requirement a line."""
    return "python-dependencies = [\n" + "".join(f'    "{t}",\n' for t in texts) + "]\n"


def _line_of(manifest: Path, text: str, after: str = "") -> int:
    lines = manifest.read_text().splitlines()
    start = next(n for n, line in enumerate(lines, 1) if after in line)
    return next(n for n, line in enumerate(lines, 1) if n >= start and f'"{text}"' in line)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheels")
    libdemo(dest, "1.0")
    libdemo(dest, "2.0")
    return dest


@pytest.mark.parametrize(
    "culprit",
    [
        "ghostlib>=1",  # missing offline (uv's explanation)
        "libdemo==3.*",  # unsatisfiable (uv's explanation)
        "plugbay>=99",  # refused: the host's plugbay
        "msgspec==0.0.1",  # refused: the host's msgspec
    ],
)
def test_a_refused_requirement_names_the_manifest_line_that_holds_it(
    tmp_path: Path, plugins: PluginFactory, wheels: Path, culprit: str
) -> None:
    index = IndexSettings(find_links=(str(wheels),), offline=True)
    envs = EnvironmentStore(tmp_path / "envs", index, host_version=HOST_VERSION)
    innocent = "libdemo>=1" if culprit.startswith("libdemo") else "libdemo==2.*"
    directory = plugins("acme.bad", CODE, extra=_requirements(innocent, culprit))
    manifest = load_manifest(directory)
    with pytest.raises(EnvironmentBuildError) as caught:
        envs.ensure(manifest)
    line = _line_of(directory / "plugin.toml", culprit)
    assert caught.value.where == f"{directory / 'plugin.toml'}:{line}", str(caught.value)
    assert f"plugin.toml:{line})" in str(caught.value)


def test_an_inline_plugins_misfit_names_the_manifest_line(plugins: PluginFactory) -> None:
    directory = plugins("acme.clash", CODE, extra=_requirements("msgspec>=0.1", "msgspec<0.1"))
    with pytest.raises(EnvironmentBuildError) as caught:
        check_fits_host(load_manifest(directory), HOST_VERSION)
    line = _line_of(directory / "plugin.toml", "msgspec<0.1")
    assert caught.value.where == f"{directory / 'plugin.toml'}:{line}"


def test_install_and_a_reload_under_a_running_host_name_the_line(
    tmp_path: Path, wheels: Path
) -> None:
    """The operator's view: ``plugbay install`` and ``plugbay reload`` print the line,
    and the running version keeps serving."""
    site = tmp_path / "site"
    old = site / "plugins" / "old"
    old.mkdir(parents=True)
    (old / "main.py").write_text(CODE)
    head = 'id = "acme.old"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
    (old / "plugin.toml").write_text(head + _requirements("libdemo==1.*", "ghostlib>=1"))
    (site / "plugbay.toml").write_text(f'[python]\nfind-links = ["{wheels}"]\noffline = true\n')

    refused = plugbay("install", "plugins/old", "--find-links", str(wheels), "--offline", cwd=site)
    assert refused.returncode == 1
    assert "(at plugins/old/plugin.toml:7)" in refused.stderr, refused.stderr

    (old / "plugin.toml").write_text(head + _requirements("libdemo==1.*"))
    with plugbay_run(site, "--plugins", "plugins"):
        assert plugbay("call", "acme.old", "version", cwd=site).stdout.strip() == "1.0"
        (old / "plugin.toml").write_text(head + _requirements("libdemo==1.*", "ghostlib>=1"))
        reload = plugbay("reload", "acme.old", cwd=site, timeout=120)
        assert reload.returncode == 1
        assert "1.0.0 keeps serving" in reload.stderr
        assert "plugins/old/plugin.toml:7)" in reload.stderr, reload.stderr
        assert plugbay("call", "acme.old", "version", cwd=site).stdout.strip() == "1.0"


def test_a_directory_in_both_the_config_and_the_command_line_is_searched_and_named_once(
    tmp_path: Path, plugins: PluginFactory, wheels: Path
) -> None:
    config = IndexSettings(find_links=(str(wheels),), offline=True)
    index = config.merged(find_links=[str(wheels)])
    envs = EnvironmentStore(tmp_path / "envs", index, host_version=HOST_VERSION)
    directory = plugins("acme.bad", CODE, extra=_requirements("ghostlib>=1"))
    with pytest.raises(EnvironmentBuildError) as caught:
        envs.ensure(load_manifest(directory))
    assert f"(offline: uv's cache and {wheels}):" in caught.value.message, caught.value.message


def test_a_requirement_is_found_in_the_dependencies_value_not_in_a_comment(
    plugins: PluginFactory,
) -> None:
    """The same text quoted in a comment and a description above the list: the line named
    is the list's own, in plugin.toml and in a pyproject's [project] dependencies."""
    from plugbay.runtime.env_where import requirement_where

    above = '# we pinned "libdemo==9.9" once\ndescription = "needs \\"libdemo==9.9\\""\n'
    directory = plugins("acme.env", CODE, extra=above + _requirements("x", "libdemo==9.9"))
    manifest = directory / "plugin.toml"
    where = requirement_where(load_manifest(manifest), "libdemo==9.9")
    assert where == f"{manifest}:{_line_of(manifest, 'libdemo==9.9', after='python-depend')}"

    pyproject = directory / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "acme-env"\nversion = "1.0.0"\n'
        '# "libdemo==9.9" was the old pin\ndescription = "\'libdemo==9.9\'"\n'
        'dependencies = [\n    "libdemo==9.9",\n]\n'
        '[tool.plugbay]\nid = "acme.env"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
    )
    manifest.unlink()
    where = requirement_where(load_manifest(pyproject), "libdemo==9.9")
    assert where == f"{pyproject}:7"
