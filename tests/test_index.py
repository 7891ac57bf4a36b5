"""A plugin index: built from wheels, served by a real static file server, searched, and
installed from with the host's resolver, its explanations and its signature checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plugbay.pdk.errors import PluginIndexError
from plugbay.pdk.index import PluginIndex, parse_requirement, plan_install
from plugbay.pdk.signing import TrustStore, generate_key, sign_wheel
from plugbay.runtime.host import Host
from plugbay.state import StateStore
from tests._cli import plugbay
from tests._index import plugin_wheel, serve


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    """An index directory: acme.base 1.0.0 and 2.0.0, acme.app 1.0.0 (needs base ^1, asks for
    the network) and 2.0.0 (needs a base ^3 nobody has), acme.solo 0.5.0."""
    d = tmp_path / "index"
    plugin_wheel(d, "acme.base", "1.0.0", description="Shared base of the acme tools")
    plugin_wheel(d, "acme.base", "2.0.0", description="Shared base of the acme tools")
    plugin_wheel(
        d,
        "acme.app",
        "1.0.0",
        dependencies={"acme.base": "^1"},
        description="Greets visitors in the lobby",
        extra='\n[permissions]\nnetwork = ["127.0.0.1:6667"]\nenv = ["LANG"]\n',
    )
    plugin_wheel(d, "acme.app", "2.0.0", dependencies={"acme.base": "^3"})
    plugin_wheel(d, "acme.solo", "0.5.0", description="Stands alone")
    return d


def test_index_build_writes_a_simple_index_with_every_manifest(
    wheels: Path, tmp_path: Path
) -> None:
    done = plugbay("index", "build", str(wheels), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "indexed 5 wheels of 3 plugins" in done.stdout
    document = json.loads((wheels / "plugbay-index.json").read_text())
    rows = {(r["id"], r["version"]): r for r in document["plugins"]}
    assert rows["acme.app", "1.0.0"]["dependencies"] == {"acme.base": "^1"}
    assert rows["acme.app", "1.0.0"]["permissions"] == ["network:127.0.0.1:6667", "env:LANG"]
    assert 'id = "acme.app"' in rows["acme.app", "1.0.0"]["manifest"]
    # PEP 691 JSON and PEP 503 HTML: the project list and each project's files with digests
    projects = json.loads((wheels / "simple" / "index.json").read_text())["projects"]
    assert [p["name"] for p in projects] == ["acme-app", "acme-base", "acme-solo"]
    page = json.loads((wheels / "simple" / "acme-base" / "index.json").read_text())
    assert page["versions"] == ["1.0.0", "2.0.0"]
    first = page["files"][0]
    assert (wheels / "simple" / "acme-base" / first["url"]).resolve().is_file()
    html = (wheels / "simple" / "acme-base" / "index.html").read_text()
    assert f"#sha256={first['hashes']['sha256']}" in html
    assert (wheels / "acme_base-1.0.0-py3-none-any.whl.plugin.toml").is_file()


def test_a_file_that_is_no_plugin_wheel_stops_the_build(wheels: Path, tmp_path: Path) -> None:
    (wheels / "junk-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    done = plugbay("index", "build", str(wheels), cwd=tmp_path)
    assert done.returncode == 1
    assert "not a zip archive" in done.stderr and "junk-1.0" in done.stderr
    assert not (wheels / "plugbay-index.json").exists()


def test_search_over_http_finds_every_word_newest_version_first(
    wheels: Path, tmp_path: Path
) -> None:
    plugbay("index", "build", str(wheels), cwd=tmp_path)
    with serve(wheels) as url:
        found = plugbay("search", "acme", "--index", url, "--json", cwd=tmp_path)
        assert found.returncode == 0, found.stderr
        assert [(r["id"], r["version"]) for r in json.loads(found.stdout)] == [
            ("acme.app", "2.0.0"),
            ("acme.base", "2.0.0"),
            ("acme.solo", "0.5.0"),
        ]
        lobby = plugbay("search", "greets LOBBY", "--index", url, cwd=tmp_path)
        assert (
            "no plugin in the index matches"
            in plugbay("search", "greets nowhere", "--index", url, cwd=tmp_path).stdout
        )
    # the newest acme.app has no description; the words of an older version do not count
    assert "acme.app" not in lobby.stdout


def test_install_from_an_http_index_resolves_dependencies_and_the_host_serves_them(
    wheels: Path, tmp_path: Path
) -> None:
    plugbay("index", "build", str(wheels), cwd=tmp_path)
    (tmp_path / "plugins").mkdir()
    state = tmp_path / "state"
    with serve(wheels) as url:
        done = plugbay(
            "install", "acme.app@^1", "--index", url, "--yes", "--state", str(state), cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr
    # what it asks for is shown before anything is installed
    out = done.stdout
    assert out.index("asks for: network:127.0.0.1:6667, env:LANG") < out.index("installed")
    assert "acme.base 1.0.0 (a dependency, unsigned)" in out
    with StateStore.open(state) as db:
        installed = sorted((pid, v) for pid, v, _ in db.installed())
        sources = {pid: src for pid, _, src in db.installed()}
    assert installed == [("acme.app", "1.0.0"), ("acme.base", "1.0.0")]
    assert sources["acme.app"] == url + "acme_app-1.0.0-py3-none-any.whl"

    async def answers() -> tuple[str, str]:
        async with Host(plugins_dir=tmp_path / "plugins", state_dir=state) as host:
            return await host.call("acme.app", "version"), await host.call("acme.base", "version")

    import asyncio

    assert asyncio.run(answers()) == ("1.0.0", "1.0.0")


def test_a_conflict_is_explained_by_the_resolver_and_nothing_is_installed(
    wheels: Path, tmp_path: Path
) -> None:
    plugbay("index", "build", str(wheels), cwd=tmp_path)
    state = tmp_path / "state"
    with serve(wheels) as url:
        done = plugbay(
            "install", "acme.app@^2", "--index", url, "--yes", "--state", str(state), cwd=tmp_path
        )
        unknown = plugbay("install", "acme.ap", "--index", url, "--yes", cwd=tmp_path)
        no_fit = plugbay("install", "acme.solo@^1", "--index", url, "--yes", cwd=tmp_path)
    assert done.returncode == 1
    text = " ".join(done.stderr.split())
    assert "acme.base" in text and "^3" in text and "1.0.0" in text and "2.0.0" in text
    assert not (state / "store").exists() or not any((state / "store").iterdir())
    assert "did you mean acme.app" in " ".join(unknown.stderr.split())
    assert "no version of acme.solo matches ^1; versions found: 0.5.0" in " ".join(
        no_fit.stderr.split()
    )


def test_without_yes_and_without_a_terminal_nothing_is_installed(
    wheels: Path, tmp_path: Path
) -> None:
    plugbay("index", "build", str(wheels), cwd=tmp_path)
    done = plugbay("install", "acme.app@^1", "--index", str(wheels), cwd=tmp_path)
    assert done.returncode == 1
    assert "asks for: network:127.0.0.1:6667" in done.stdout
    assert "pass --yes" in " ".join(done.stderr.split())
    assert not (tmp_path / ".plugbay" / "store").exists()


def test_signatures_are_verified_when_the_operator_requires_them(
    wheels: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    key, pub = generate_key("acme", tmp_path / "keys")
    sign_wheel(wheels / "acme_solo-0.5.0-py3-none-any.whl", key)
    plugbay("index", "build", str(wheels), cwd=tmp_path)
    TrustStore(state).add(pub)
    with serve(wheels) as url:
        args = ("--index", url, "--yes", "--state", str(state), "--require-signed")
        unsigned = plugbay("install", "acme.base@^1", *args, cwd=tmp_path)
        signed = plugbay("install", "acme.solo", *args, "--json", cwd=tmp_path)
    assert unsigned.returncode == 1
    assert "not signed, and this host requires signed plugins" in " ".join(unsigned.stderr.split())
    assert signed.returncode == 0, signed.stdout + signed.stderr
    [row] = json.loads(signed.stdout)["installed"]
    assert (row["id"], row["signed_by"]) == ("acme.solo", TrustStore(state).keys().popitem()[0])


def test_a_wheel_changed_after_the_index_was_built_is_refused(wheels: Path, tmp_path: Path) -> None:
    plugbay("index", "build", str(wheels), cwd=tmp_path)
    swapped = wheels / "acme_solo-0.5.0-py3-none-any.whl"
    plugin_wheel(tmp_path / "evil", "acme.solo", "0.5.0", description="changed")
    shutil.copy(tmp_path / "evil" / swapped.name, swapped)
    with serve(wheels) as url:
        done = plugbay("install", "acme.solo", "--index", url, "--yes", cwd=tmp_path)
    assert done.returncode == 1
    assert "does not have the digest the index names" in " ".join(done.stderr.split())
    assert not (tmp_path / ".plugbay" / "store" / "acme.solo").exists()


def test_what_is_installed_already_is_not_downloaded_again(wheels: Path) -> None:
    from plugbay.model.manifest import parse_manifest
    from plugbay.model.versions import Version
    from plugbay.pdk.index import build_index

    build_index(wheels)
    index = PluginIndex.open(wheels)
    here = [parse_manifest('id = "acme.base"\nversion = "1.5.0"\ntype = "utility"\nentry = "m:P"')]
    plan = plan_install(
        index,
        *parse_requirement("acme.app@^1"),
        installed=here,
        host_version=Version.parse("1.0.0"),
    )
    assert [(e.id, str(e.version)) for e in plan.downloads] == [("acme.app", "1.0.0")]
    assert plan.present == {"acme.base": "1.5.0"}


def test_a_hostile_index_is_refused_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "plugbay-index.json").write_text(
        json.dumps(
            {
                "format": "plugbay-index/1",
                "plugins": [{"wheel": "../../etc/passwd.whl", "sha256": "0" * 64, "manifest": ""}],
            }
        )
    )
    with pytest.raises(PluginIndexError, match=r"not a plain \.whl file name beside the index"):
        PluginIndex.open(tmp_path)


def test_a_file_url_reads_like_the_directory(wheels: Path, tmp_path: Path) -> None:
    from plugbay.pdk.index import build_index

    build_index(wheels)
    index = PluginIndex.open(wheels.as_uri())
    [solo] = index.versions("acme.solo")
    (tmp_path / "got").mkdir()
    wheel = index.download(solo, tmp_path / "got")
    assert wheel.read_bytes() == (wheels / solo.wheel).read_bytes()
    assert [e.id for e in index.search("stands alone")] == ["acme.solo"]
