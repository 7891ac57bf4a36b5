"""The plugin store: versions side by side, install, upgrade (with dependents), restarts."""

from __future__ import annotations

import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from plugbay import PlugbayError, PluginReloadError, PluginStateError
from plugbay.api.errors import DependentsError, ManifestError, ResolutionError
from plugbay.runtime.host import Host
from plugbay.runtime.store import PluginStore, wheel_to_directory
from plugbay.state import StateStore
from tests.conftest import PluginFactory


def source(factory: PluginFactory, plugin_id: str, version: str, extra: str = "") -> Path:
    """A plugin directory outside the host's plugins directory (what one installs)."""
    return factory(
        plugin_id,
        f"""
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def version(self) -> str:
                return "{version}"
        """,
        version=version,
        extra=extra,
    )


@pytest.fixture
def sources(tmp_path: Path) -> PluginFactory:
    return PluginFactory(tmp_path / "sources")


@pytest.fixture
def empty_host(make_host: Callable[..., Host], tmp_path: Path) -> Callable[..., Host]:
    (tmp_path / "plugins").mkdir(exist_ok=True)
    return lambda **kw: make_host(plugins_dir=tmp_path / "plugins", **kw)


async def test_installed_versions_live_side_by_side_and_upgrade_moves_between_them(
    sources: PluginFactory, empty_host: Callable[..., Host], tmp_path: Path
) -> None:
    async with empty_host() as host:
        installed = host.install(source(sources, "acme.tool", "1.0.0"))
        assert installed.root == tmp_path / "state" / "store" / "acme.tool" / "1.0.0"
        assert (installed.root / "plugin.toml").is_file()
    async with empty_host() as host:
        assert await host.call("acme.tool", "version") == "1.0.0"
        host.install(source(sources, "acme.tool", "1.1.0"))
        # installed beside it; the active version does not change until upgraded
        assert await host.call("acme.tool", "version") == "1.0.0"
        assert host.info("acme.tool")["versions_known"] == ["1.1.0", "1.0.0"]
        stored = host.info("acme.tool")["versions_stored"]
        assert [(v["version"], v["kept"]) for v in stored] == [("1.0.0", False), ("1.1.0", False)]
        plan = await host.upgrade("acme.tool")
        assert {k: (old, str(new.version)) for k, (old, new) in plan.changes.items()} == {
            "acme.tool": ("1.0.0", "1.1.0")
        }
        assert await host.call("acme.tool", "version") == "1.1.0"
    async with empty_host() as host:  # a restart restores the version that was active
        assert await host.call("acme.tool", "version") == "1.1.0"
        await host.rollback("acme.tool")
    async with empty_host() as host:
        assert await host.call("acme.tool", "version") == "1.0.0"
        assert host.state is not None
        actions = [(e.action, e.version, e.result) for e in host.state.history("acme.tool")]
        for expected in [
            ("install", "1.0.0", "ok"),
            ("install", "1.1.0", "ok"),
            ("upgrade", "1.1.0", "ok"),
            ("rollback", "1.0.0", "ok"),
            ("load", "1.0.0", "ok"),
        ]:
            assert expected in actions


async def test_upgrade_refuses_what_a_dependent_cannot_take_and_moves_them_together(
    sources: PluginFactory, empty_host: Callable[..., Host]
) -> None:
    async with empty_host() as host:
        host.install(source(sources, "acme.base", "1.0.0"))
        host.install(source(sources, "acme.app", "1.0.0", '[dependencies]\n"acme.base" = "^1"\n'))
    async with empty_host() as host:
        host.install(source(sources, "acme.base", "2.0.0"))
        with pytest.raises(DependentsError) as err:
            await host.upgrade("acme.base")
        assert "2.0.0 would break its dependents: 'acme.app' 1.0.0 requires 'acme.base' ^1" in (
            str(err.value)
        )
        # no version of the dependent takes 2.0.0: no consistent set
        with pytest.raises(ResolutionError) as no_set:
            await host.upgrade("acme.base", with_dependents=True)
        assert "no consistent set of installed versions accepts acme.base 2.0.0" in str(
            no_set.value
        )
        assert "'acme.app' 1.0.0 requires 'acme.base' ^1" in str(no_set.value)
        assert await host.call("acme.base", "version") == "1.0.0"
        host.install(source(sources, "acme.app", "2.0.0", '[dependencies]\n"acme.base" = "^2"\n'))
        plan = await host.upgrade("acme.base", "2.0.0", with_dependents=True)
        assert plan.order == ["acme.base", "acme.app"]
        assert await host.call("acme.base", "version") == "2.0.0"
        assert await host.call("acme.app", "version") == "2.0.0"
    async with empty_host() as host:
        assert host.plugin("acme.base").version == "2.0.0"
        assert host.plugin("acme.app").version == "2.0.0"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("3.0.0", "version 3.0.0 is not installed"),
        ("0.9.0", "0.9.0 is older than 1.0.0, which serves now"),
        (None, "1.0.0 is the newest version installed for this host"),
    ],
)
async def test_upgrade_to_a_version_that_is_not_there_says_what_is(
    sources: PluginFactory, empty_host: Callable[..., Host], version: str | None, expected: str
) -> None:
    async with empty_host() as host:
        host.install(source(sources, "acme.tool", "1.0.0"))
        host.install(source(sources, "acme.tool", "0.9.0"))
    async with empty_host() as host:
        assert host.plugin("acme.tool").version == "1.0.0"  # the newest, nothing pinned yet
        with pytest.raises(PluginStateError, match=expected):  # HTTP 409, not 400
            await host.upgrade("acme.tool", version)
        assert await host.call("acme.tool", "version") == "1.0.0"


def test_install_refuses_bad_input_clearly(sources: PluginFactory, tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state") as state:
        store = PluginStore(tmp_path / "state" / "store", state)
        from plugbay.model.versions import Version

        host = Version.parse("0.1.0")
        good = source(sources, "acme.tool", "1.0.0")
        store.install(good, host_version=host)
        with pytest.raises(PlugbayError, match=r"acme.tool 1.0.0 is already installed"):
            store.install(good, host_version=host)
        with pytest.raises(ManifestError, match="there is nothing to install here"):
            store.install(tmp_path / "nope", host_version=host)
        future = source(sources, "acme.future", "1.0.0", 'host = ">=9"\n')
        with pytest.raises(PlugbayError, match=r"needs host >=9, and this host is 0.1.0"):
            store.install(future, host_version=host)
        broken = sources("acme.broken", manifest='id = "acme.broken"\nversion = "one"\n')
        with pytest.raises(ManifestError):
            store.install(broken, host_version=host)
        assert [(pid, v) for pid, v, _ in state.installed()] == [("acme.tool", "1.0.0")]


def wheel(path: Path, entry: str) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "acme_wheel/plugin.toml",
            f'id = "acme.wheel"\nversion = "1.0.0"\ntype = "utility"\nentry = "{entry}"\n',
        )
        z.writestr("acme_wheel/__init__.py", "")
        z.writestr("acme_wheel/words.py", "WORD = 'wheel'\n")
        z.writestr(
            "acme_wheel/main.py",
            textwrap.dedent(
                """
                from plugbay import UtilityPlugin, command
                from .words import WORD

                class P(UtilityPlugin):
                    @command
                    def hello(self) -> str:
                        return "from a " + WORD
                """
            ),
        )
        z.writestr("acme_wheel-1.0.0.dist-info/METADATA", "Name: acme-wheel\n")
    return path


@pytest.mark.parametrize("entry", ["main:P", "acme_wheel.main:P"])
async def test_an_installed_wheel_serves(
    tmp_path: Path, empty_host: Callable[..., Host], entry: str
) -> None:
    built = wheel(tmp_path / "acme_wheel-1.0.0-py3-none-any.whl", entry)
    async with empty_host() as host:
        manifest = host.install(built)
        assert manifest.id == "acme.wheel"
        assert manifest.root is not None and manifest.root.is_relative_to(tmp_path / "state")
    async with empty_host() as host:
        assert await host.call("acme.wheel", "hello") == "from a wheel"


def test_a_bad_wheel_is_refused(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.whl"
    with zipfile.ZipFile(hostile, "w") as z:
        z.writestr("pkg/plugin.toml", "")
        z.writestr("../../escape.py", "")
    with pytest.raises(ManifestError, match="would be written outside"):
        wheel_to_directory(hostile, tmp_path / "out")
    not_a_wheel = tmp_path / "junk.whl"
    not_a_wheel.write_text("junk")
    with pytest.raises(ManifestError, match="not a readable wheel"):
        wheel_to_directory(not_a_wheel, tmp_path / "out2")
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("pkg/__init__.py", "")
    with pytest.raises(ManifestError, match=r"the wheel holds no plugin\.toml inside a package"):
        wheel_to_directory(empty, tmp_path / "out3")


async def test_an_edited_plugin_directory_wins_over_a_kept_copy_at_the_next_start(
    plugins: PluginFactory, make_host: Callable[..., Host]
) -> None:
    directory = source(plugins, "acme.tool", "1.0.0")
    async with make_host() as host:
        assert await host.call("acme.tool", "version") == "1.0.0"
    manifest = directory / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.1.0"'))
    (directory / "main.py").write_text(
        (directory / "main.py").read_text().replace('"1.0.0"', '"1.1.0"')
    )
    async with make_host() as host:
        assert await host.call("acme.tool", "version") == "1.1.0"
        # and the copy kept of 1.0.0 is what a rollback returns to
        with pytest.raises(PluginReloadError, match=r"rollback failed; 1\.1\.0 keeps serving"):
            await host.rollback("acme.tool", "0.5.0")
        await host.rollback("acme.tool", "1.0.0")
        assert await host.call("acme.tool", "version") == "1.0.0"


def test_the_command_line_installs_upgrades_rolls_back_and_shows_history(
    sources: PluginFactory, tmp_path: Path
) -> None:
    from tests._cli import plugbay

    (tmp_path / "plugins").mkdir(exist_ok=True)
    # the operator trusts it (inline): the commands here are about versions, not the sandbox
    (tmp_path / "plugbay.toml").write_text('[policy]\ninline = ["acme.*"]\n')
    first = plugbay("install", str(source(sources, "acme.tool", "1.0.0")), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "installed acme.tool 1.0.0 in" in first.stdout
    again = plugbay("install", str(source(sources, "acme.tool", "1.0.0")), cwd=tmp_path)
    assert again.returncode == 1
    assert "acme.tool 1.0.0 is already installed" in again.stderr
    # the first start serves 1.0.0 and remembers it; a newer install does not change that
    assert plugbay("call", "acme.tool", "version", cwd=tmp_path).stdout.strip() == "1.0.0"
    plugbay("install", str(source(sources, "acme.tool", "1.1.0")), cwd=tmp_path)
    dry = plugbay("upgrade", "acme.tool", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "acme.tool: would move 1.0.0 → 1.1.0" in dry.stdout
    done = plugbay("upgrade", "acme.tool", cwd=tmp_path)
    assert "acme.tool: moved 1.0.0 → 1.1.0" in done.stdout, done.stderr
    back = plugbay("rollback", "acme.tool", cwd=tmp_path)
    assert "acme.tool: rolled back 1.1.0 → 1.0.0" in back.stdout, back.stderr
    assert plugbay("call", "acme.tool", "version", cwd=tmp_path).stdout.strip() == "1.0.0"
    reloaded = plugbay("reload", "acme.tool", cwd=tmp_path)
    assert "acme.tool: reloaded 1.0.0 → 1.0.0" in reloaded.stdout, reloaded.stderr
    history = plugbay("history", "acme.tool", cwd=tmp_path).stdout
    for row in ("install", "upgrade", "1.0.0 → 1.1.0", "rollback", "1.1.0 → 1.0.0"):
        assert row in history
    nothing = plugbay("rollback", "acme.none", cwd=tmp_path)
    assert nothing.returncode == 1
    assert "no plugin 'acme.none' is known to this host" in nothing.stderr


def _serving_one_of_two(sources: PluginFactory, tmp_path: Path) -> None:
    """acme.tool 1.0.0 and 1.1.0 installed with the command line; 1.0.0 serves (the first
    start took it, and kept it in the store)."""
    from tests._cli import plugbay

    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugbay.toml").write_text('[policy]\ninline = ["acme.*"]\n')
    for version in ("1.0.0", "1.1.0"):
        added = plugbay("install", str(source(sources, "acme.tool", version)), cwd=tmp_path)
        assert added.returncode == 0, added.stderr
        assert plugbay("call", "acme.tool", "version", cwd=tmp_path).stdout == "1.0.0\n"


def test_upgrade_to_a_version_not_installed_names_those_that_are_and_how_to_add_it(
    sources: PluginFactory, tmp_path: Path
) -> None:
    from tests._cli import plugbay

    _serving_one_of_two(sources, tmp_path)

    def refused(*argv: str) -> str:
        done = plugbay("upgrade", "acme.tool", *argv, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        return " ".join(done.stderr.split())

    missing = refused("2.0.0")
    assert "version 2.0.0 is not installed (installed: 1.1.0, 1.0.0)" in missing
    assert "'plugbay install PATH'" in missing
    assert "'plugbay install acme.tool@2.0.0 --index URL'" in missing
    assert "then 'plugbay upgrade acme.tool 2.0.0'" in missing
    unversioned = refused("2.0")
    assert "'2.0' is not a version to upgrade to" in unversioned
    assert "name an installed version (1.1.0, 1.0.0)" in unversioned
    # the version serving already: said, and not swapped for itself
    same = refused("1.0.0")
    assert "1.0.0 serves already" in same and "newer versions installed: 1.1.0" in same
    history = plugbay("history", "acme.tool", "--json", cwd=tmp_path).stdout
    assert '"upgrade"' not in history
    assert plugbay("call", "acme.tool", "version", cwd=tmp_path).stdout == "1.0.0\n"


def test_a_rollback_to_a_version_not_kept_names_the_kept_ones(
    sources: PluginFactory, tmp_path: Path
) -> None:
    """It said only 'not in the plugin store', pointing at a directory that is not there."""
    from tests._cli import plugbay

    _serving_one_of_two(sources, tmp_path)
    done = plugbay("rollback", "acme.tool", "--to", "0.9.0", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    said = " ".join(done.stderr.split())
    assert "version 0.9.0 is not in the plugin store (kept: 1.0.0, 1.1.0)" in said
    assert "roll back to one kept" in said and "1.0.0 keeps serving" in said
    assert plugbay("call", "acme.tool", "version", cwd=tmp_path).stdout == "1.0.0\n"


async def test_an_upgrade_that_fails_half_way_is_undone(
    sources: PluginFactory, empty_host: Callable[..., Host]
) -> None:
    async with empty_host() as host:
        host.install(source(sources, "acme.base", "1.0.0"))
        host.install(source(sources, "acme.app", "1.0.0", '[dependencies]\n"acme.base" = "^1"\n'))
    async with empty_host() as host:
        host.install(source(sources, "acme.base", "2.0.0"))
        broken = sources(
            "acme.app",
            """
            from plugbay import UtilityPlugin, command

            class P(UtilityPlugin):
                async def initialize(self, context) -> None:
                    raise RuntimeError("cannot migrate the database")

                @command
                def version(self) -> str:
                    return "2.0.0"
            """,
            version="2.0.0",
            extra='[dependencies]\n"acme.base" = "^2"\n',
        )
        host.install(broken)
        with pytest.raises(PluginReloadError) as err:
            await host.upgrade("acme.base", with_dependents=True)
        assert "initialize raised RuntimeError: cannot migrate the database" in str(err.value)
        assert "(the upgrade was undone: acme.base 1.0.0 moved back)" in str(err.value)
        assert await host.call("acme.base", "version") == "1.0.0"
        assert await host.call("acme.app", "version") == "1.0.0"


async def test_a_plain_upgrade_passes_over_pre_releases_unless_named(
    sources: PluginFactory, empty_host: Callable[..., Host]
) -> None:
    # 'plugbay upgrade ID' took the newest installed, pre-releases included: 2.1.0-rc.1
    async with empty_host() as host:
        host.install(source(sources, "acme.tool", "1.0.0"))
    async with empty_host() as host:
        host.install(source(sources, "acme.tool", "1.1.0-rc.1"))
        with pytest.raises(PluginStateError) as only_pre:
            await host.upgrade("acme.tool")
        assert "pre-releases installed: 1.1.0-rc.1" in str(only_pre.value)
        assert only_pre.value.hint == "name a pre-release to move to it: " \
            "'plugbay upgrade acme.tool 1.1.0-rc.1'"  # fmt: skip
        host.install(source(sources, "acme.tool", "1.0.1"))
        host.install(source(sources, "acme.tool", "1.2.0-rc.1"))
        await host.upgrade("acme.tool")
        assert await host.call("acme.tool", "version") == "1.0.1"  # the newest release
        await host.upgrade("acme.tool", "1.2.0-rc.1")  # named: taken
        assert await host.call("acme.tool", "version") == "1.2.0-rc.1"
