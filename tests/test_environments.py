"""Each plugin its own Python dependencies (``runtime/environments.py``).

Real uv, real environments, real sandboxed workers. The packages are tiny wheels
written here (``libdemo`` 1.0 and 2.0: two versions of one library), a source-only
package whose build fails, and a package that needs one nobody has; everything
installs offline from a temporary ``--find-links`` directory.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugbay import PlugbayError
from plugbay.model.manifest import load_manifest
from plugbay.runtime.environments import (
    EnvironmentBuildError,
    EnvironmentStore,
    IndexSettings,
    check_fits_host,
    requirement_key,
)
from plugbay.runtime.host import HOST_VERSION, Host
from plugbay.runtime.sbom import cyclonedx
from tests._wheels import libdemo, write_wheel
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow

#: a plugin that reports which libdemo it imported, and what else it can reach
CODE = """
import sys

from plugbay import UtilityPlugin, command


class P(UtilityPlugin):
    @command
    def version(self) -> str:
        import libdemo

        return libdemo.VERSION

    @command
    def where(self) -> str:
        import libdemo

        return libdemo.where()

    @command
    def can_import(self, name: str) -> str:
        try:
            __import__(name)
        except ImportError as exc:
            return f"ImportError: {exc}"
        return "imported"

    @command
    def read(self, path: str) -> str:
        try:
            with open(path, "rb") as f:
                return f"read {len(f.read())} bytes"
        except OSError as exc:
            return f"OSError: {exc.strerror}"

    @command
    def plugbay_version(self) -> str:
        import plugbay

        return plugbay.__version__
"""


def _sdist(dest: Path, name: str, version: str) -> Path:
    """A source-only package whose build backend fails (no network needed to try)."""
    files = {
        "pyproject.toml": textwrap.dedent(
            f"""
            [project]
            name = "{name}"
            version = "{version}"
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
            """
        ),
        "backend.py": textwrap.dedent(
            """
            def get_requires_for_build_wheel(config_settings=None):
                return []

            def prepare_metadata_for_build_wheel(directory, config_settings=None):
                raise RuntimeError("this package cannot be built on this machine")

            def build_wheel(directory, config_settings=None, metadata_directory=None):
                raise RuntimeError("this package cannot be built on this machine")
            """
        ),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    path = dest / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{rel}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheels")
    libdemo(dest, "1.0")
    libdemo(dest, "2.0")
    write_wheel(
        dest, "needs-ghost", "1.0", {"needs_ghost/__init__.py": ""}, requires=["ghostlib>=1"]
    )
    _sdist(dest, "brokenbuild", "1.0")
    return dest


@pytest.fixture
def index(wheels: Path) -> IndexSettings:
    return IndexSettings(find_links=(str(wheels),), offline=True)


def _host(plugins: PluginFactory, tmp_path: Path, index: IndexSettings, **kwargs: Any) -> Host:
    kwargs.setdefault("state_dir", tmp_path / "state")
    return Host(plugins.root, entry_points=False, init_timeout=10.0, python_index=index, **kwargs)


def _leftovers(root: Path) -> list[str]:
    """What an environment store holds besides its cache, lock and runtime links."""
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if not p.name.startswith((".cache", ".lock", ".runtime-"))
    )


# --------------------------------------------------------------------------- manifests


def test_manifest_reads_python_dependencies_where_python_people_write_them(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    toml = plugins(
        "acme.toml", CODE, extra='python-dependencies = ["libdemo==1.*", "humanize>=4"]\n'
    )
    assert load_manifest(toml).python_dependencies == ("libdemo==1.*", "humanize>=4")

    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "acme-proj"
            version = "1.0.0"
            dependencies = ["libdemo>=2", "plugbay>=0.1"]

            [tool.plugbay]
            id = "acme.proj"
            version = "1.0.0"
            type = "utility"
            entry = "main:P"
            """
        )
    )
    assert load_manifest(project).python_dependencies == ("libdemo>=2", "plugbay>=0.1")


def test_a_requirement_that_is_not_pep_508_is_refused_naming_its_line(
    plugins: PluginFactory,
) -> None:
    bad = plugins("acme.bad", CODE, extra='python-dependencies = ["libdemo ==> 1"]\n')
    with pytest.raises(PlugbayError) as caught:
        load_manifest(bad)
    assert "not a PEP 508 requirement" in caught.value.message
    assert caught.value.where is not None and caught.value.where.endswith("plugin.toml:5")


def test_an_installed_wheels_requires_dist_counts_as_its_requirements(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    from plugbay.model.discover import _with_requires_dist

    info = tmp_path / "acme_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-dist\nVersion: 1.0\n"
        "Requires-Dist: libdemo>=2\nRequires-Dist: pytest; extra == 'test'\n"
    )
    manifest = load_manifest(plugins("acme.dist", CODE))
    merged = _with_requires_dist(manifest, importlib.metadata.PathDistribution(info))
    assert merged.python_dependencies == ("libdemo>=2",)


def test_a_plugin_wheels_requires_dist_survives_plugbay_install(tmp_path: Path) -> None:
    from plugbay.runtime.store import wheel_to_directory

    manifest = 'id = "acme.wheel"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
    wheel = write_wheel(
        tmp_path / "dist",
        "acme-wheel",
        "1.0.0",
        {"acme_wheel/plugin.toml": manifest + "[config.x]\ntype = \"string\"\n",
         "acme_wheel/main.py": CODE},
        requires=["libdemo==2.*", "pytest; extra == 'test'"],
    )  # fmt: skip
    directory = wheel_to_directory(wheel, tmp_path / "unpacked")
    assert load_manifest(directory).python_dependencies == ("libdemo==2.*",)


@given(
    st.lists(
        st.sampled_from(
            [
                "libdemo==1.*",
                "humanize>=4,<5",
                "attrs",
                "rich[jupyter]>=13",
                "six; python_version>'3'",
            ]
        ),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    st.randoms(),
)
def test_a_requirement_sets_key_ignores_order_spacing_and_repeats(
    requirements: list[str], rnd: Any
) -> None:
    shuffled = list(requirements)
    rnd.shuffle(shuffled)
    spaced = [r.replace(">=", " >= ").replace("==", " == ") for r in shuffled]
    assert requirement_key(requirements) == requirement_key(spaced + shuffled[:1])
    if len(requirements) > 1:
        assert requirement_key(requirements) != requirement_key(requirements[1:])


def test_identical_requirement_sets_have_one_key() -> None:
    assert requirement_key(["libdemo==1.*", "humanize>=4"]) == requirement_key(
        ["humanize >= 4", "libdemo ==1.*"]
    )
    assert requirement_key(["libdemo==1.*"]) != requirement_key(["libdemo==2.*"])


# --------------------------------------------------------------------------- conflicts side by side


@pytest.fixture
def two_hosts_worth(plugins: PluginFactory) -> None:
    plugins("acme.one", CODE, extra='python-dependencies = ["libdemo==1.*"]\n')
    plugins("acme.two", CODE, extra='python-dependencies = ["libdemo==2.*"]\n')
    # the same requirement set, spelt differently: shares acme.one's environment
    plugins("acme.three", CODE, extra='python-dependencies = ["libdemo == 1.*"]\n')


@pytest.mark.usefixtures("two_hosts_worth")
async def test_two_sandboxed_plugins_needing_lib_1_and_lib_2_both_run_each_with_its_own(
    plugins: PluginFactory, tmp_path: Path, index: IndexSettings
) -> None:
    async with _host(plugins, tmp_path, index) as host:
        for pid in ("acme.one", "acme.two", "acme.three"):
            assert host.manager.record(pid).state == "active", host.manager.record(pid).reason
            assert host.info(pid)["sandbox"]["sandboxed"]
        assert await host.call("acme.one", "version") == "1.0"
        assert await host.call("acme.two", "version") == "2.0"
        assert await host.call("acme.three", "version") == "1.0"
        one, two, three = (host.info(p)["python"] for p in ("acme.one", "acme.two", "acme.three"))
        assert one["environment"] == three["environment"] != two["environment"]
        assert [(p["name"], p["version"]) for p in two["packages"]] == [("libdemo", "2.0")]
        where = await host.call("acme.two", "where")
        assert where.startswith(two["environment"])

        # plugbay's API is there; nothing else of the host's site-packages is
        assert await host.call("acme.one", "plugbay_version") == HOST_VERSION
        assert await host.call("acme.one", "can_import", name="msgspec") == "imported"
        for hosts_own in ("rich", "httpx", "fastapi"):
            answer = await host.call("acme.one", "can_import", name=hosts_own)
            assert answer.startswith("ImportError"), (hosts_own, answer)
        # ... not even to read: the sandbox grants the environment and the API only
        rich_file = importlib.metadata.distribution("rich").locate_file("rich/__init__.py")
        assert (await host.call("acme.one", "read", path=str(rich_file))).startswith("OSError")
        libdemo2 = Path(where)
        assert (await host.call("acme.two", "read", path=str(libdemo2))).startswith("read")
        assert (await host.call("acme.one", "read", path=str(libdemo2))).startswith("OSError")
    envs = EnvironmentStore(tmp_path / "state" / "envs", host_version=HOST_VERSION)
    assert len(envs.environments()) == 2


def test_a_second_environment_hard_links_its_files_from_uvs_cache(
    tmp_path: Path, plugins: PluginFactory, index: IndexSettings
) -> None:
    envs = EnvironmentStore(tmp_path / "envs", index, host_version=HOST_VERSION)
    a = envs.ensure(
        load_manifest(plugins("acme.a", CODE, extra='python-dependencies = ["libdemo==2.*"]\n'))
    )
    b = envs.ensure(
        load_manifest(
            plugins("acme.b", CODE, extra='python-dependencies = ["libdemo==2.0", "libdemo>=1"]\n')
        )
    )
    assert a is not None and b is not None and a.path != b.path
    file_a = a.site_packages / "libdemo" / "__init__.py"
    file_b = b.site_packages / "libdemo" / "__init__.py"
    assert os.stat(file_a).st_ino == os.stat(file_b).st_ino  # one copy on disk
    assert os.stat(file_a).st_nlink >= 3  # the cache's, a's and b's names for it


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("requirement", "kind", "words"),
    [
        ("libdemo==3.*", "unsatisfiable", "libdemo"),
        ("ghostlib>=1", "missing", "ghostlib"),
        ("needs-ghost==1.0", "missing", "ghostlib"),
        ("brokenbuild==1.0", "build", "brokenbuild"),
    ],
)
def test_a_requirement_uv_cannot_meet_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path,
    plugins: PluginFactory,
    index: IndexSettings,
    requirement: str,
    kind: str,
    words: str,
) -> None:
    envs = EnvironmentStore(tmp_path / "envs", index, host_version=HOST_VERSION)
    manifest = load_manifest(
        plugins("acme.bad", CODE, extra=f'python-dependencies = ["{requirement}"]\n')
    )
    with pytest.raises(EnvironmentBuildError) as caught:
        envs.ensure(manifest)
    error = caught.value
    assert error.details["kind"] == kind, str(error)
    assert words in error.message and requirement in error.message
    assert error.plugin == "acme.bad" and error.where and error.hint
    assert "Traceback" not in str(error)
    assert _leftovers(envs.root) == []


@pytest.mark.parametrize(
    ("requirement", "words"),
    [
        ("libdemo @ file:///tmp/libdemo-1.0-py3-none-any.whl", "URL or a local path"),
        ("libdemo @ https://example.invalid/libdemo-1.0.whl", "URL or a local path"),
        ("plugbay>=99", f"this host is plugbay {HOST_VERSION}"),
    ],
)
def test_a_refused_requirement_is_refused_before_uv_runs(
    tmp_path: Path, plugins: PluginFactory, index: IndexSettings, requirement: str, words: str
) -> None:
    envs = EnvironmentStore(tmp_path / "envs", index, host_version=HOST_VERSION)
    manifest = load_manifest(
        plugins("acme.refused", CODE, extra=f'python-dependencies = ["{requirement}"]\n')
    )
    with pytest.raises(EnvironmentBuildError, match=words) as caught:
        envs.ensure(manifest)
    assert caught.value.hint
    assert _leftovers(envs.root) == []


def test_a_local_path_requirement_installs_when_the_policy_allows_it(
    tmp_path: Path, plugins: PluginFactory, wheels: Path
) -> None:
    wheel = wheels / "libdemo-2.0-py3-none-any.whl"
    allowed = IndexSettings(offline=True, allow_direct=True)
    envs = EnvironmentStore(tmp_path / "envs", allowed, host_version=HOST_VERSION)
    manifest = load_manifest(
        plugins("acme.local", CODE, extra=f'python-dependencies = ["libdemo @ {wheel.as_uri()}"]\n')
    )
    env = envs.ensure(manifest)
    assert env is not None and [p.version for p in env.packages()] == ["2.0"]


def test_a_requirement_on_plugbay_within_the_hosts_version_needs_no_environment(
    tmp_path: Path, plugins: PluginFactory, index: IndexSettings
) -> None:
    envs = EnvironmentStore(tmp_path / "envs", index, host_version=HOST_VERSION)
    manifest = load_manifest(
        plugins("acme.api", CODE, extra=f'python-dependencies = ["plugbay=={HOST_VERSION}"]\n')
    )
    assert envs.ensure(manifest) is None
    assert _leftovers(envs.root) == []


# --------------------------------------------------------------------------- inline plugins


def test_an_inline_plugins_requirements_must_fit_the_hosts_environment(
    plugins: PluginFactory,
) -> None:
    fits = load_manifest(
        plugins("acme.fits", CODE, extra='python-dependencies = ["msgspec>=0.1"]\n')
    )
    assert [p.name for p in check_fits_host(fits, HOST_VERSION)] == ["msgspec"]

    clash = load_manifest(
        plugins("acme.clash", CODE, extra='python-dependencies = ["msgspec<0.1"]\n')
    )
    with pytest.raises(EnvironmentBuildError) as caught:
        check_fits_host(clash, HOST_VERSION)
    text = str(caught.value)
    have = importlib.metadata.version("msgspec")
    # both requirement chains, and the fix
    assert "acme.clash 1.0.0 requires msgspec<0.1" in text
    assert (
        f"the host's environment has msgspec {have} (plugbay {HOST_VERSION} requires msgspec"
        in text
    )
    assert "run it sandboxed" in text
    assert "\n" not in text  # one paragraph


async def test_an_inline_plugin_that_does_not_fit_fails_to_load_and_the_host_serves_on(
    plugins: PluginFactory, tmp_path: Path, index: IndexSettings
) -> None:
    plugins("acme.clash", CODE, extra='python-dependencies = ["libdemo==1.*"]\n')
    plugins("acme.fine", CODE)
    async with _host(plugins, tmp_path, index, inline=["*"]) as host:
        rec = host.manager.record("acme.clash")
        assert rec.state == "failed"
        assert "host's environment has no libdemo" in str(rec.reason)
        assert "run it sandboxed" in str(rec.reason)
        assert await host.call("acme.fine", "can_import", name="json") == "imported"


async def test_a_trusted_plugin_in_a_worker_of_its_own_gets_its_environment_too(
    plugins: PluginFactory, tmp_path: Path, index: IndexSettings
) -> None:
    plugins(
        "acme.trusted",
        CODE,
        extra='isolation = "process"\npython-dependencies = ["libdemo==2.*"]\n',
    )
    async with _host(plugins, tmp_path, index, inline=["acme.*"]) as host:
        info = host.info("acme.trusted")
        assert info["isolation"] == "process" and not info["sandbox"]["sandboxed"]
        assert await host.call("acme.trusted", "version") == "2.0"
        assert (await host.call("acme.trusted", "can_import", name="rich")).startswith(
            "ImportError"
        )


def test_the_host_configs_python_table(tmp_path: Path) -> None:
    data = {"python": {"find-links": ["wheels", "/abs"], "offline": True}}
    settings = IndexSettings.from_config(data, base=tmp_path)
    assert settings.find_links == (str(tmp_path / "wheels"), "/abs") and settings.offline
    with pytest.raises(PlugbayError, match="no key 'offlin'"):
        IndexSettings.from_config({"python": {"offlin": True}})
    with pytest.raises(PlugbayError, match="offline must be true or false"):
        IndexSettings.from_config({"python": {"offline": "yes"}})


# --------------------------------------------------------------------------- life cycle


async def test_a_reload_with_changed_requirements_builds_first_and_keeps_the_old_on_failure(
    plugins: PluginFactory, tmp_path: Path, index: IndexSettings
) -> None:
    path = plugins(
        "acme.swap", CODE, extra='python-dependencies = ["libdemo==1.*"]\n', dirname="swap"
    )
    async with _host(plugins, tmp_path, index) as host:
        assert await host.call("acme.swap", "version") == "1.0"

        plugins("acme.swap", CODE, version="1.1.0", dirname="swap",
                extra='python-dependencies = ["libdemo==3.*"]\n')  # fmt: skip
        with pytest.raises(PlugbayError) as caught:
            await host.reload("acme.swap")
        assert "libdemo==3.*" in str(caught.value)
        assert "unsatisfiable" in str(caught.value) or "cannot be satisfied" in str(caught.value)
        # the old version still serves, from its own environment
        assert host.manager.record("acme.swap").version == "1.0.0"
        assert await host.call("acme.swap", "version") == "1.0"

        plugins("acme.swap", CODE, version="1.2.0", dirname="swap",
                extra='python-dependencies = ["libdemo==2.*"]\n')  # fmt: skip
        await host.reload("acme.swap")
        assert host.manager.record("acme.swap").version == "1.2.0"
        assert await host.call("acme.swap", "version") == "2.0"
    assert path.is_dir()


async def test_install_builds_first_and_an_upgrade_whose_environment_fails_keeps_the_old(
    tmp_path: Path, wheels: Path, index: IndexSettings
) -> None:
    sources = PluginFactory(tmp_path / "sources")
    (tmp_path / "plugins").mkdir()
    only_v1 = tmp_path / "only-v1"
    libdemo(only_v1, "1.0")

    def host(settings: IndexSettings = index) -> Host:
        return _host(PluginFactory(tmp_path / "plugins"), tmp_path, settings)

    def source(version: str, requirement: str) -> Path:
        extra = f'python-dependencies = ["{requirement}"]\n'
        return sources("acme.up", CODE, version=version, extra=extra, dirname=f"up-{version}")

    async with host() as h:
        h.install(source("1.0.0", "libdemo==1.*"))
    async with host() as h:
        assert await h.call("acme.up", "version") == "1.0"
        with pytest.raises(EnvironmentBuildError, match="libdemo==3"):
            h.install(source("1.1.0", "libdemo==3.*"))
        assert h.state is not None
        assert [v for _, v, _ in h.state.installed("acme.up")] == ["1.0.0"]
        assert not (tmp_path / "state" / "store" / "acme.up" / "1.1.0").exists()
        upgrade = h.install(source("1.2.0", "libdemo==2.*"))
        envs = EnvironmentStore(tmp_path / "state" / "envs", index, host_version=HOST_VERSION)
        built = envs.find(upgrade)
        assert built is not None  # at install, before any upgrade
        assert await h.call("acme.up", "version") == "1.0"
        await h.upgrade("acme.up")
        assert await h.call("acme.up", "version") == "2.0"
        await h.rollback("acme.up")
        assert await h.call("acme.up", "version") == "1.0"

    # the environment of 1.2.0 is gone and libdemo 2 cannot be had any more
    import shutil

    shutil.rmtree(built.path)
    async with host(IndexSettings(find_links=(str(only_v1),), offline=True)) as h:
        with pytest.raises(PlugbayError) as caught:
            await h.upgrade("acme.up")
        assert "libdemo==2.*" in str(caught.value) and "only libdemo==1.0 is available" in str(
            caught.value
        )
        assert "1.0.0 keeps serving" in str(caught.value)
        assert await h.call("acme.up", "version") == "1.0"
        assert h.manager.record("acme.up").version == "1.0.0"


# --------------------------------------------------------------------------- the CLI


def plugbay(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "plugbay.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_cli_install_env_list_info_sbom_and_gc(
    tmp_path: Path, plugins: PluginFactory, wheels: Path
) -> None:
    workdir = tmp_path
    one = plugins("acme.one", CODE, extra='python-dependencies = ["libdemo==1.*"]\n')
    links = ["--find-links", str(wheels), "--offline"]
    state = ["--state", "st"]
    done = plugbay("install", str(one), *state, *links, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "building the Python environment of acme.one" in done.stderr  # progress
    assert "installed acme.one 1.0.0" in done.stdout

    # a bad one: one paragraph, exit 1, nothing stored and nothing half-built
    bad = plugins("acme.bad", CODE, extra='python-dependencies = ["libdemo==3.*"]\n')
    refused = plugbay("install", str(bad), *state, *links, cwd=workdir)
    assert refused.returncode == 1
    assert "error: plugin 'acme.bad': cannot build its Python environment" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (workdir / "st" / "store" / "acme.bad").exists()

    listed = plugbay("env", "list", *state, "--plugins", "none", "--json", cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["environments"]
    assert [r["requirements"] for r in rows] == [["libdemo==1.*"]]
    assert rows[0]["plugins"] == ["acme.one 1.0.0"]
    assert rows[0]["path"] == f"st/envs/{rows[0]['key']}"  # as --state names it

    info = plugbay("info", "acme.one", *state, "--plugins", "none", cwd=workdir)
    assert info.returncode == 0, info.stderr
    assert "libdemo 1.0" in info.stdout

    sbom = plugbay(
        "info", "acme.one", *state, "--plugins", "none", "--sbom", "bom.json", cwd=workdir
    )
    assert sbom.returncode == 0, sbom.stderr
    bom = json.loads((workdir / "bom.json").read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    assert bom["metadata"]["component"]["name"] == "acme.one"
    assert [c["purl"] for c in bom["components"]] == ["pkg:pypi/libdemo@1.0"]
    assert bom["dependencies"][0] == {
        "ref": "plugin:acme.one@1.0.0",
        "dependsOn": ["pkg:pypi/libdemo@1.0"],
    }

    # an environment no plugin uses any more goes; one in use stays
    envs = EnvironmentStore(workdir / "st" / "envs", IndexSettings(find_links=(str(wheels),), offline=True),
                            host_version=HOST_VERSION)  # fmt: skip
    orphan = envs.ensure(
        load_manifest(plugins("acme.gone", CODE, extra='python-dependencies = ["libdemo==2.*"]\n'))
    )
    assert orphan is not None
    envs.worker_paths(orphan)  # this plugbay's runtime links, as a worker's start makes them
    old_runtime = workdir / "st" / "envs" / ".runtime-0123456789ab"  # another plugbay's
    old_runtime.mkdir()
    gc = plugbay("env", "gc", *state, "--plugins", "none", cwd=workdir)
    assert gc.returncode == 0, gc.stderr
    assert not orphan.path.exists() and not old_runtime.exists()
    assert f"removed st/envs/{orphan.path.name}\n" in gc.stdout  # as --state names it
    assert any(p.name.startswith(".runtime-") for p in (workdir / "st" / "envs").iterdir())
    assert [e.requirements for e in envs.environments()] == [("libdemo==1.*",)]


def test_env_list_json_carries_the_notes_the_human_output_shows(
    tmp_path: Path, plugins: PluginFactory
) -> None:
    """A plugin version whose requirements the host refuses has no environment to list:
    the table's reader is told on stderr, the --json reader in ``notes``, the same words."""
    plugins("acme.old", CODE, extra='python-dependencies = ["msgspec<0.1"]\n')
    where = ["--state", "st", "--plugins", str(plugins.root)]
    listed = plugbay("env", "list", *where, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    answer = json.loads(listed.stdout)
    assert answer["environments"] == []
    [note] = answer["notes"]
    assert note.startswith("plugin 'acme.old': it requires 'msgspec<0.1'")
    shown = plugbay("env", "list", *where, cwd=tmp_path)
    assert f"note: {note}" in " ".join(shown.stderr.split())


def test_cyclonedx_names_each_package_and_what_it_depends_on() -> None:
    bom = cyclonedx(
        "acme.x",
        "1.0.0",
        [
            {"name": "Lib_A", "version": "1.0", "requires": ["lib-b>=2"], "direct": True},
            {"name": "lib-b", "version": "2.1", "requires": []},
        ],
        host_version=HOST_VERSION,
    )
    assert [c["purl"] for c in bom["components"]] == ["pkg:pypi/lib-a@1.0", "pkg:pypi/lib-b@2.1"]
    deps = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    assert deps["plugin:acme.x@1.0.0"] == ["pkg:pypi/lib-a@1.0"]
    assert deps["pkg:pypi/lib-a@1.0"] == ["pkg:pypi/lib-b@2.1"]


# --------------------------------------------------------------------------- validate


def test_validate_warns_about_an_import_no_requirement_covers(plugins: PluginFactory) -> None:
    from plugbay.pdk.analyzer import validate_plugin

    code = "import libdemo\nimport humanize\nimport json\n" + CODE
    path = plugins("acme.imports", code, extra='python-dependencies = ["libdemo==1.*"]\n')
    result = validate_plugin(path, import_check=False)
    warned = [f.message for f in result.findings if f.code == "python-dependency"]
    assert warned == ["imports 'humanize', which no Python requirement of the plugin covers"]


# --------------------------------------------------------------------------- the guide


def test_the_environments_guide_works_as_written(tmp_path: Path, wheels: Path) -> None:
    guide = Path(__file__).resolve().parent.parent / "docs" / "environments.md"
    blocks = re.findall(r"```sh\n(.*?)```", guide.read_text(), re.S)
    assert blocks
    (tmp_path / "wheels").mkdir()
    for version in ("1.0", "2.0"):
        libdemo(tmp_path / "wheels", version)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    for name in ("PLUGBAY_PLUGINS", "PLUGBAY_STATE", "PLUGBAY_CONFIG"):
        env.pop(name, None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(blocks)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    answers = [line.strip() for line in done.stdout.splitlines()]
    assert "1.0" in answers and "2.0" in answers
    bom = json.loads((tmp_path / "acme-new.cdx.json").read_text())
    assert [c["purl"] for c in bom["components"]] == ["pkg:pypi/libdemo@2.0"]


@pytest.mark.slow
async def test_on_ray_each_plugin_runs_from_its_own_environment_on_its_node(
    plugins: PluginFactory, tmp_path: Path, index: IndexSettings, ray_cluster: Any
) -> None:
    from plugbay.isolation.policy import IsolationPolicy

    plugins("acme.one", CODE, extra='python-dependencies = ["libdemo==1.*"]\n')
    plugins("acme.two", CODE, extra='python-dependencies = ["libdemo==2.*"]\n')
    policy = IsolationPolicy.from_config(
        {
            "ray": {"address": ray_cluster.address, "plugins": ["*"]},
            "policy": {"inline": ["acme.two"]},
        }
    )
    async with _host(plugins, tmp_path, index, policy=policy) as host:
        for pid in ("acme.one", "acme.two"):
            assert host.manager.record(pid).state == "active", host.manager.record(pid).reason
            assert host.info(pid)["location"]["backend"] == "ray"
        # untrusted: a sandboxed worker forked from its environment's zygote on the node
        assert host.info("acme.one")["sandbox"]["sandboxed"]
        assert await host.call("acme.one", "version") == "1.0"
        # trusted, with an environment of its own: that environment's zygote too (no sandbox)
        assert not host.info("acme.two")["sandbox"]["sandboxed"]
        assert await host.call("acme.two", "version") == "2.0"
        for pid in ("acme.one", "acme.two"):
            answer = await host.call(pid, "can_import", name="rich")
            assert answer.startswith("ImportError"), (pid, answer)
