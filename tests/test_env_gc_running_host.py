"""``plugbay env gc`` beside a running ``plugbay run`` (``cli/env.py``,
``runtime/env_cleanup.collect``, ``web/_environments.py``).

The command removed environments from disk on its own, and the host kept the warm zygote
of a removed environment running (a Python holding the deleted files). Now the running
host does the gc through its API, and a host serving no API, which cannot be told, is
not gone around.

Real uv (offline, tiny wheels written here), a real host, real workers, the real command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import psutil
import pytest

from tests._cli import plugbay
from tests._running import Running, plugbay_run
from tests._waiting import until_sync
from tests._wheels import libdemo

pytestmark = pytest.mark.slow

CODE = """from plugbay import UtilityPlugin, command
import libdemo


class P(UtilityPlugin):
    @command
    def version(self) -> str:
        return libdemo.VERSION
"""


def _plugin(root: Path, plugin_id: str, requirement: str) -> Path:
    where = root / plugin_id
    where.mkdir(parents=True, exist_ok=True)
    (where / "plugin.toml").write_text(
        f'id = "{plugin_id}"\nversion = "1.0.0"\ntype = "utility"\nentry = "main:P"\n'
        f'python-dependencies = ["{requirement}"]\n'
    )
    (where / "main.py").write_text(CODE)
    return where


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A host's directory: acme.moves needs libdemo 1, acme.stays libdemo 2, offline."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("1.0", "2.0"):
        libdemo(wheels, version)
    (tmp_path / "plugbay.toml").write_text(
        f"[python]\nfind-links = [{json.dumps(str(wheels))}]\noffline = true\n"
    )
    _plugin(tmp_path / "plugins", "acme.moves", "libdemo==1.*")
    _plugin(tmp_path / "plugins", "acme.stays", "libdemo==2.*")
    return tmp_path


def _zygotes(host: Running) -> dict[str, int]:
    """The pid of the host's warm zygote of each environment, by the environment's key."""
    envs = str((host.state / "envs").resolve())
    found: dict[str, int] = {}
    for proc in psutil.Process(host.proc.pid).children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if f"{envs}/" in cmdline and "zygote_main" in cmdline:
            key = cmdline.split(f"{envs}/", 1)[1].split("/", 1)[0]
            found.setdefault(key, proc.pid)  # the zygote, not a worker forked from it
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _ok(*args: str, cwd: Path) -> str:
    done = plugbay(*args, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_env_gc_beside_a_running_host_stops_the_zygote_of_the_environment_it_removed(
    site: Path,
) -> None:
    """acme.moves goes from libdemo 1 to 2 by a reload: its old environment is unused, its
    zygote still warm. ``env gc`` removed the directory and left that process running."""
    with plugbay_run(site, timeout=180) as host:
        assert _ok("call", "acme.moves", "version", cwd=site).strip() == "1.0"
        assert _ok("call", "acme.stays", "version", cwd=site).strip() == "2.0"
        zygotes = until_sync(lambda: (z := _zygotes(host)) and len(z) == 2 and z, "2 zygotes")
        [old] = [
            k for k in zygotes if any((host.state / "envs" / k).rglob("libdemo-1.0.dist-info"))
        ]
        _plugin(site / "plugins", "acme.moves", "libdemo==2.*")
        _ok("reload", "acme.moves", cwd=site)
        assert _alive(zygotes[old])  # nothing uses it, and it runs on

        answer = json.loads(_ok("env", "gc", "--json", cwd=site))

        assert answer["removed"] == [os.path.join(".plugbay", "envs", old)]
        assert not (host.state / "envs" / old).exists()
        until_sync(lambda: not _alive(zygotes[old]), "the removed environment's zygote to end", 15)
        [kept] = [pid for key, pid in zygotes.items() if key != old]
        assert _alive(kept)
        assert _ok("call", "acme.stays", "version", cwd=site).strip() == "2.0"
        assert _ok("call", "acme.moves", "version", cwd=site).strip() == "2.0"


def test_env_gc_beside_a_running_host_keeps_the_environments_of_what_it_runs(
    site: Path,
) -> None:
    """Done by the host, a gc keeps what the host runs, whatever plugin directories the
    command was given (here none of the host's)."""
    (site / "elsewhere").mkdir()
    with plugbay_run(site, timeout=180) as host:
        before = sorted(
            p.name for p in (host.state / "envs").iterdir() if not p.name.startswith(".")
        )
        assert len(before) == 2

        bad = httpx.post(f"{host.url}/api/v1/environments/gc", headers=host.auth,
                         json={"keep": ["../../etc"]}, timeout=60)  # fmt: skip
        assert bad.status_code == 422, bad.text
        answer = json.loads(_ok("env", "gc", "--plugins", "elsewhere", "--json", cwd=site))

        assert answer["removed"] == []
        after = sorted(
            p.name for p in (host.state / "envs").iterdir() if not p.name.startswith(".")
        )
        assert after == before
        zygotes = _zygotes(host)
        assert sorted(zygotes) == before and all(_alive(pid) for pid in zygotes.values())
        assert _ok("call", "acme.stays", "version", cwd=site).strip() == "2.0"


def test_env_gc_beside_a_host_serving_no_api_is_refused_and_removes_nothing(
    site: Path,
) -> None:
    """A host without an API cannot be told: the command says so, and what to do."""
    (site / "elsewhere").mkdir()
    with plugbay_run(site, "--no-http", timeout=180, expect_http=False) as host:
        before = sorted(
            p.name for p in (host.state / "envs").iterdir() if not p.name.startswith(".")
        )

        done = plugbay("env", "gc", "--plugins", "elsewhere", cwd=site, timeout=120)

        assert done.returncode == 1
        said = " ".join(done.stderr.split())
        assert f"(pid {host.proc.pid}) serves" in said and "without an API" in said
        assert "restart it without --no-http" in said
        after = sorted(
            p.name for p in (host.state / "envs").iterdir() if not p.name.startswith(".")
        )
        assert after == before and len(after) == 2
