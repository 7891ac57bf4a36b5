"""A plugin author's day with per-plugin Python environments, step by step, where it went
wrong (``runtime/environments.py`` and what it touches: the store's kept copies, plugin
wheels, uninstall, ``plugbay env gc``).

Real uv, real environments, real hosts and workers, the real command line. Packages are
tiny wheels written here, installed offline from a temporary ``--find-links`` directory or
from an index served over HTTP on a free port of 127.0.0.1.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from plugbay.model.manifest import PluginManifest, load_manifest
from plugbay.pdk import validate_plugin
from plugbay.pdk.build import build_plugin
from plugbay.runtime.environments import EnvironmentBuildError, EnvironmentStore, IndexSettings
from plugbay.runtime.host import HOST_VERSION, Host
from tests._cli import plugbay
from tests._index import serve
from tests._wheels import libdemo, write_wheel
from tests.conftest import PluginFactory

pytestmark = pytest.mark.slow

#: a plugin that says which libdemo, and which msgspec, it imported
CODE = """
from plugbay import UtilityPlugin, command


class P(UtilityPlugin):
    @command
    def version(self) -> str:
        import libdemo

        return libdemo.VERSION

    @command
    def msgspec_version(self) -> str:
        import msgspec

        return msgspec.__version__
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("wheels")
    libdemo(dest, "1.0")
    libdemo(dest, "2.0")
    write_wheel(dest, "libextra", "1.0", {"libextra/__init__.py": "NAME = 'extra'\n"})
    # an msgspec older than the host's (not the real one: importing it fails), and a
    # library that needs it
    write_wheel(
        dest, "msgspec", "0.18.6", {"msgspec/__init__.py": "raise ImportError('not msgspec')\n"}
    )
    write_wheel(
        dest, "needs-old-msgspec", "1.0", {"needs_old_msgspec/__init__.py": ""},
        requires=["msgspec<0.19"],
    )  # fmt: skip
    return dest


@pytest.fixture
def index(wheels: Path) -> IndexSettings:
    return IndexSettings(find_links=(str(wheels),), offline=True)


def _requiring(plugins: PluginFactory, plugin_id: str, *requirements: str) -> PluginManifest:
    listed = ", ".join(f'"{r}"' for r in requirements)
    return load_manifest(plugins(plugin_id, CODE, extra=f"python-dependencies = [{listed}]\n"))


def _leftovers(root: Path) -> list[str]:
    """What an environment store holds besides its cache, lock and runtime links."""
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if not p.name.startswith((".cache", ".lock", ".runtime-"))
    )


# --------------------------------------------------------------------------- running it


async def test_a_start_in_the_plugins_own_directory_keeps_its_code_not_the_state_inside_it(
    tmp_path: Path, index: IndexSettings
) -> None:
    """``plugbay call ID CMD --plugins ..`` run in the plugin's directory keeps the host's
    state (its store, the environments and uv's cache) in ``./.plugbay``, inside the
    plugin: the copy a start keeps for rollback copied that too, into the store inside
    it, over and over: each cached start took minutes, and no copy was ever kept."""
    plugins = PluginFactory(tmp_path / "work")
    here = plugins(
        "acme.here", CODE, extra='python-dependencies = ["libdemo==1.*"]\n', dirname="acme-here"
    )
    state = here / ".plugbay"
    kept = state / "store" / "acme.here" / "1.0.0"
    inodes = []
    for _ in range(2):
        async with Host(
            plugins.root, state_dir=state, entry_points=False, init_timeout=10.0,
            python_index=index,
        ) as host:  # fmt: skip
            assert await host.call("acme.here", "version") == "1.0"
        # the copy kept for rollback holds the plugin's files, nothing of the state
        assert sorted(p.name for p in kept.iterdir()) == [".plugbay-source", "main.py", "plugin.toml"]  # fmt: skip
        inodes.append(kept.stat().st_ino)
    # the plugin's files did not change: the second start kept the first copy as it was
    assert inodes[0] == inodes[1]


# --------------------------------------------------------------------------- building it


def test_a_pyproject_plugin_with_requirements_builds_and_its_wheel_installs_and_runs(
    tmp_path: Path, wheels: Path
) -> None:
    """``[project] dependencies`` are a plugin's requirements (docs/environments.md):
    ``plugbay build`` refused the wheel it built, as if they were not there."""
    project = tmp_path / "acme-lib"
    (project / "acme_lib").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "acme-lib"
            version = "1.0.0"
            dependencies = ["plugbay>=0.1,<1", "libdemo==2.*"]

            [project.entry-points."plugbay.plugins"]
            "acme.lib" = "acme_lib.plugin:P"

            [tool.setuptools]
            packages = ["acme_lib"]

            [tool.plugbay]
            id = "acme.lib"
            version = "1.0.0"
            type = "utility"
            entry = "acme_lib.plugin:P"
            """
        )
    )
    (project / "acme_lib" / "__init__.py").write_text("")
    (project / "acme_lib" / "plugin.py").write_text("import libdemo\n" + CODE)

    built = build_plugin(project)  # validates the source, builds, validates the wheel
    assert not validate_plugin(built.wheel).errors
    host = tmp_path / "host"
    host.mkdir()
    links = ["--find-links", str(wheels), "--offline"]
    installed = plugbay("install", str(built.wheel), *links, cwd=host)
    assert installed.returncode == 0, installed.stderr
    called = plugbay("call", "acme.lib", "version", "--plugins", "none", cwd=host)
    assert called.returncode == 0, called.stderr
    assert called.stdout.strip() == "2.0"


# --------------------------------------------------------------------------- plugbay's own dependencies


async def test_msgspec_and_the_other_runtime_packages_are_the_hosts_in_every_environment(
    tmp_path: Path, plugins: PluginFactory, index: IndexSettings
) -> None:
    """A worker trades msgspec frames with the host: a plugin pinning another msgspec got
    it in its environment, and its worker "broke the protocol" at its first frame."""
    envs = EnvironmentStore(tmp_path / "envs", index, host_version=HOST_VERSION)
    have = importlib.metadata.version("msgspec")

    # its own pin on another version: refused before uv runs, naming both sides
    pinned = _requiring(plugins, "acme.pinned", "msgspec==0.18.6", "libdemo==1.*")
    with pytest.raises(EnvironmentBuildError) as caught:
        envs.ensure(pinned)
    text = str(caught.value)
    assert "it requires 'msgspec==0.18.6'" in text and f"the host's msgspec {have}" in text
    # where: the manifest line holding the pin (tests/test_env_where.py)
    assert "widen the range" in text and caught.value.where == f"{pinned.location}:5"
    assert _leftovers(envs.root) == []

    # a library's need of another version: uv's explanation, and where the pin comes from
    lib = _requiring(plugins, "acme.oldlib", "needs-old-msgspec")
    with pytest.raises(EnvironmentBuildError) as caught:
        envs.ensure(lib)
    assert f"msgspec=={have}: the host's own" in caught.value.message
    assert caught.value.hint and f"work with the host's msgspec {have}" in caught.value.hint
    assert _leftovers(envs.root) == []

    # a range the host's version is in: the worker runs on the host's msgspec
    served = PluginFactory(tmp_path / "served")
    served("acme.fits", CODE, extra='python-dependencies = ["msgspec>=0.1", "libdemo==1.*"]\n')
    async with Host(
        served.root, state_dir=tmp_path / "state", entry_points=False, init_timeout=10.0,
        python_index=index,
    ) as host:  # fmt: skip
        assert host.info("acme.fits")["sandbox"]["sandboxed"]
        assert await host.call("acme.fits", "msgspec_version") == have
        assert await host.call("acme.fits", "version") == "1.0"
        packages = host.info("acme.fits")["python"]["packages"]
        assert [p["name"] for p in packages] == ["libdemo"]


# --------------------------------------------------------------------------- offline, and a wrong name


def test_offline_installs_what_uvs_cache_holds_and_a_wrong_name_online_says_so(
    tmp_path: Path, plugins: PluginFactory, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``offline = true``: "only find-links and uv's cache" (docs/environments.md), but uv
    was told to use no index at all, so what it had cached was never found; and a name
    no index has, online, was answered "install without --offline"."""
    project = tmp_path / "index" / "libdemo"
    project.mkdir(parents=True)
    for wheel in sorted(wheels.glob("libdemo-*.whl")):
        shutil.copy(wheel, project)
    (project / "index.html").write_text(
        "".join(f'<a href="{w.name}">{w.name}</a>\n' for w in sorted(project.glob("*.whl")))
    )
    root = tmp_path / "envs"
    with serve(tmp_path / "index") as url:
        monkeypatch.setenv("UV_DEFAULT_INDEX", url)  # uv's configured index
        online = EnvironmentStore(root, IndexSettings(), host_version=HOST_VERSION)
        assert online.ensure(_requiring(plugins, "acme.online", "libdemo==2.*")) is not None
        with pytest.raises(EnvironmentBuildError) as caught:
            online.ensure(_requiring(plugins, "acme.typo", "libdemoo==2.*"))
        assert caught.value.details["kind"] == "missing"
        assert caught.value.hint and "check the package's name" in caught.value.hint
        assert "--offline" not in caught.value.hint

    # the index is gone: offline, what the install above fetched is still at hand
    offline = EnvironmentStore(root, IndexSettings(offline=True), host_version=HOST_VERSION)
    env = offline.ensure(_requiring(plugins, "acme.offline", "libdemo>=2"))
    assert env is not None and [p.version for p in env.packages()] == ["2.0"]
    with pytest.raises(EnvironmentBuildError) as caught:
        offline.ensure(_requiring(plugins, "acme.never", "libextra==1.0"))
    assert "offline: uv's cache" in caught.value.message
    assert caught.value.hint and "--find-links" in caught.value.hint


# --------------------------------------------------------------------------- removing it


def _cached(envs: Path, name: str) -> bool:
    """Whether uv's cache of the store holds anything of the package ``name``."""
    return any(name in p.name for p in (envs / ".cache").rglob("*"))


def _json(*args: str, cwd: Path) -> object:
    done = plugbay(*args, "--json", cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_uninstall_and_env_gc_remove_unused_environments_and_give_the_disk_back(
    tmp_path: Path, plugins: PluginFactory, wheels: Path
) -> None:
    """An uninstalled plugin's environment stayed, and ``env gc`` removed environments but
    not their packages in uv's cache, where nearly all their disk is (hard links)."""
    host = tmp_path / "host"
    host.mkdir()
    nowhere = ["--plugins", "none"]
    links = ["--find-links", str(wheels), "--offline"]
    for pid, reqs in (
        ("acme.one", '"libdemo==1.*"'),
        ("acme.same", '"libdemo == 1.*"'),  # the same set: the same environment
        ("acme.extra", '"libdemo==1.*", "libextra==1.0"'),
    ):
        source = plugins(pid, CODE, extra=f"python-dependencies = [{reqs}]\n")
        done = plugbay("install", str(source), *links, cwd=host, timeout=120)
        assert done.returncode == 0, done.stderr
    envs = host / ".plugbay" / "envs"
    assert _cached(envs, "libextra")

    answer = _json("uninstall", "acme.extra", *nowhere, cwd=host)
    assert isinstance(answer, dict)
    [gone] = answer["environments"]
    assert not Path(gone).exists() and answer["freed_bytes"] > 0
    assert not _cached(envs, "libextra") and _cached(envs, "libdemo")  # the others' stays

    # one environment for two plugins: it stays while the other uses it
    answer = _json("uninstall", "acme.one", *nowhere, cwd=host)
    assert isinstance(answer, dict) and answer["environments"] == []
    listed = _json("env", "list", *nowhere, cwd=host)
    assert isinstance(listed, dict) and listed["notes"] == []
    assert [r["plugins"] for r in listed["environments"]] == [["acme.same 1.0.0"]]

    # an environment nobody uses (built for a plugin directory since removed): env gc
    orphan = EnvironmentStore(
        envs, IndexSettings(find_links=(str(wheels),), offline=True), host_version=HOST_VERSION
    ).ensure(_requiring(plugins, "acme.orphan", "libextra==1.0"))
    assert orphan is not None and _cached(envs, "libextra")
    collected = _json("env", "gc", *nowhere, cwd=host)
    assert collected == {
        "ok": True,
        "removed": [str(orphan.path.relative_to(host))],  # under .plugbay, as --state is
        "packages": ["libextra"],
        "freed_bytes": collected["freed_bytes"],  # type: ignore[index]
    }
    assert collected["freed_bytes"] > 0 and not orphan.path.exists()  # type: ignore[index]
    assert not _cached(envs, "libextra") and _cached(envs, "libdemo")
    assert os.listdir(envs / ".cache")  # the cache itself stays


async def test_uninstall_stops_the_warm_zygote_of_the_environment_it_removed(
    tmp_path: Path, plugins: PluginFactory, index: IndexSettings
) -> None:
    """The zygote a sandboxed plugin's workers were forked from imports from its
    environment: once ``uninstall`` removed the environment, that process ran on until
    the host stopped. Now it ends with its environment; the neighbour's stays and serves."""
    from plugbay.isolation.process import ProcessBackend
    from tests._waiting import until

    def running(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state != "Z"

    (tmp_path / "none").mkdir()
    state = tmp_path / "state"

    def host() -> Host:
        return Host(tmp_path / "none", state_dir=state, entry_points=False, init_timeout=10.0,
                    python_index=index)  # fmt: skip

    async with host() as h:
        h.install(plugins("acme.gone", CODE, extra='python-dependencies = ["libdemo==1.*"]\n'))
        h.install(plugins("acme.stays", CODE, extra='python-dependencies = ["libdemo==2.*"]\n'))
    async with host() as h:
        assert await h.call("acme.gone", "version") == "1.0"
        assert await h.call("acme.stays", "version") == "2.0"
        backend = h.manager.backends["process"]
        assert isinstance(backend, ProcessBackend)
        zygotes = {Path(k).relative_to(state / "envs").parts[0]: z.pid
                   for k, z in backend.env_zygotes.items()}  # fmt: skip
        assert len(zygotes) == 2 and all(pid and running(pid) for pid in zygotes.values())
        done = await h.uninstall("acme.gone")
        [removed] = [Path(p).name for p in done["environments"]]
        gone, kept = zygotes.pop(removed), zygotes.popitem()[1]
        assert gone is not None and kept is not None
        await until(lambda: not running(gone), "the removed environment's zygote to end", 10)
        assert running(kept)
        assert await h.call("acme.stays", "version") == "2.0"
