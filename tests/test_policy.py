"""The operator's isolation policy: placement, limits, grants, secrets, and `plugbay doctor`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugbay import ConfigError, PermissionDenied
from plugbay.isolation._cgroups import discover
from plugbay.isolation.policy import IsolationPolicy
from plugbay.model.manifest import load_manifest
from plugbay.runtime.host import Host
from tests import _wasm
from tests.conftest import PluginFactory

MiB = 1 << 20


def manifest(plugins: PluginFactory, plugin_id: str, extra: str = "", dirname: str | None = None):  # type: ignore[no-untyped-def]
    return load_manifest(plugins(plugin_id, extra=extra, dirname=dirname) / "plugin.toml")


def test_only_core_plugins_and_listed_ids_run_inline(plugins: PluginFactory) -> None:
    policy = IsolationPolicy.from_config({"policy": {"inline": ["acme.trusted-*"]}})
    dirs = [plugins.root]
    core = policy.place(manifest(plugins, "acme.core", dirname="core/c"), dirs)
    assert (core.isolation, core.sandboxed) == ("inline", False)
    assert "bundled core plugin" in core.reason
    listed = policy.place(manifest(plugins, "acme.trusted-one"), dirs)
    assert listed.isolation == "inline" and "acme.trusted-*" in listed.reason
    # a manifest cannot ask its way out of the sandbox
    asks = policy.place(manifest(plugins, "acme.sneaky", 'isolation = "inline"\n'), dirs)
    assert (asks.isolation, asks.sandboxed) == ("process", True)
    assert "only the operator can allow" in asks.reason
    # a core/ folder deeper down, or outside the plugin dirs, is not trusted
    deep = policy.place(manifest(plugins, "acme.deep", dirname="vendor/core/d"), dirs)
    assert deep.sandboxed
    # a trusted plugin asking for a process gets one, unsandboxed
    own = policy.place(manifest(plugins, "acme.trusted-proc", 'isolation = "process"\n'), dirs)
    assert (own.isolation, own.sandboxed) == ("process", False)
    # trust-core = false sandboxes the core plugins too
    strict = IsolationPolicy.from_config({"policy": {"trust-core": False}})
    assert strict.place(manifest(plugins, "acme.core2", dirname="core/c2"), dirs).sandboxed


def test_limits_are_the_ask_else_the_default_never_above_the_cap(plugins: PluginFactory) -> None:
    policy = IsolationPolicy.from_config(
        {"policy": {"limits": {"memory": "512MiB"}, "defaults": {"open-files": 32}}}
    )
    asked = manifest(
        plugins,
        "acme.big",
        '[resources]\nmemory = "4GiB"\nthreads = 2\nstorage = "1MiB"\nfile-size = "8MiB"\n',
    )
    limits = policy.limits_for(asked)
    assert limits["memory"] == 512 * MiB  # capped
    assert limits["threads"] == 2  # asked, under the cap
    assert limits["open-files"] == 32  # the operator's default
    assert limits["storage"] == 1 * MiB
    # as asked: the kernel enforces the quota on every file (isolation.quota); where it
    # is only sampled, the process backend keeps one file within it
    assert limits["file-size"] == 8 * MiB
    assert policy.limits_for(manifest(plugins, "acme.small"))["memory"] == 256 * MiB


def test_only_what_is_asked_and_granted_is_in_effect(plugins: PluginFactory) -> None:
    policy = IsolationPolicy.from_config(
        {
            "policy": {"grants": {"acme.net": ["network:127.0.0.1:8080", "read:/srv"]}},
            "secrets": {"api-key": "s3cret", "other": "nope"},
        }
    )
    m = manifest(
        plugins,
        "acme.net",
        "[permissions]\nnetwork = ['127.0.0.1:8080', '10.0.0.1:22']\nread = ['/srv/data']\n"
        "secrets = ['api-key']\nenv = ['PLUGBAY_TEST_SHOWN']\n",
    )
    placed = policy.place(
        m, [plugins.root], granted=["secret:api-key", "secret:other", "env:PLUGBAY_TEST_SHOWN"],
        host_environment={"PLUGBAY_TEST_SHOWN": "yes", "HOME": "/root"},
    )  # fmt: skip
    assert placed.effective == (
        "network:127.0.0.1:8080",
        "read:/srv/data",  # covered by the grant of /srv
        "env:PLUGBAY_TEST_SHOWN",
        "secret:api-key",
    )
    assert placed.secrets == {"api-key": "s3cret"}  # 'other' is granted but never asked for
    assert placed.environment == {"PLUGBAY_TEST_SHOWN": "yes"}
    request = placed.sandbox_request(m, plugins.root / "data")
    assert request["policy"]["network"] == ["127.0.0.1:8080"]
    assert "/srv/data" in request["policy"]["read_paths"]
    assert placed.rules() == {
        "allow_exec": False,
        "processes": 0,
        "network": ["127.0.0.1:8080"],
        "storage": 256 * MiB,  # the default quota, named in a "no space" error
        # where the guard says an EACCES is the file's own mode, not the sandbox's
        "reads": ["/srv/data"],
        "writes": [],
    }
    assert "s3cret" not in repr(placed) and "s3cret" not in json.dumps(placed.describe())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"policy": {"inlined": []}}, "[policy] has no key 'inlined'"),
        ({"policy": {"inline": "acme.*"}}, "[policy] inline must be a list of strings"),
        ({"policy": {"limits": {"memroy": 1}}}, "[policy.limits] has no limit 'memroy'"),
        ({"policy": {"limits": {"memory": "lots"}}}, "'lots' is not a size"),
        ({"policy": {"defaults": {"threads": -1}}}, "threads must be a number >= 0"),
        ({"policy": {"grants": {"acme.x": "subprocess"}}}, "must be a list of strings"),
        ({"policy": {"trust-core": "yes"}}, "trust-core must be true or false"),
    ],
)
def test_a_bad_policy_is_a_config_error_naming_the_key(config: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as caught:
        IsolationPolicy.from_config(config, where="plugbay.toml")
    assert message in str(caught.value) and "plugbay.toml" in str(caught.value)


SECRETIVE = """
import os
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def secret(self, name: str) -> str:
        return self.context.secrets.get(name)

    @command
    def environment(self) -> dict[str, str]:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read().decode(errors="replace")
        return {**dict(os.environ), "_proc": raw}
"""


async def test_secrets_and_environment_reach_a_sandboxed_plugin_only_when_granted(
    plugins: PluginFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGBAY_SECRET_API_KEY", "from-the-host-env")
    monkeypatch.setenv("PLUGBAY_TEST_SHOWN", "shown")
    monkeypatch.setenv("PLUGBAY_TEST_CANARY", "never")
    asks = "[permissions]\nsecrets = ['api-key', 'db']\nenv = ['PLUGBAY_TEST_SHOWN']\n"
    plugins("acme.granted", SECRETIVE, extra=asks)
    plugins("acme.ungranted", SECRETIVE, extra=asks)
    config = tmp_path / "plugbay.toml"
    config.write_text(
        '[policy.grants]\n"acme.granted" = ["secret:api-key", "secret:db", "env:PLUGBAY_TEST_SHOWN"]\n'
        '[secrets]\ndb = "from-the-config"\n'
    )
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, config_file=config
    ) as host:
        assert host.plugin("acme.granted").placement.sandboxed  # type: ignore[union-attr]
        assert await host.call("acme.granted", "secret", name="api-key") == "from-the-host-env"
        assert await host.call("acme.granted", "secret", name="db") == "from-the-config"
        env = await host.call("acme.granted", "environment")
        assert env["PLUGBAY_TEST_SHOWN"] == "shown"
        for leaked in ("PLUGBAY_TEST_CANARY", "PLUGBAY_SECRET_API_KEY", "from-the-host-env"):
            assert leaked not in json.dumps(env)  # not in os.environ, not in /proc/self/environ
        with pytest.raises(PermissionDenied) as caught:
            await host.call("acme.ungranted", "secret", name="api-key")
        assert "plugbay grant acme.ungranted secret:api-key" in str(caught.value)
        assert "PLUGBAY_TEST_SHOWN" not in await host.call("acme.ungranted", "environment")
        info = host.info("acme.granted")
        assert info["sandbox"]["secrets"] == ["api-key", "db"]
        assert [layer["name"] for layer in info["sandbox"]["layers"]] == [
            "cgroup", "netns", "userns", "environ", "rlimits", "no_new_privs", "landlock", "seccomp",
        ]  # fmt: skip
        assert all(layer["active"] for layer in info["sandbox"]["layers"])
        group = host.plugin("acme.granted").handle.cgroup  # type: ignore[union-attr]
        cgroup_dirs = list(discover().dirs(group).values())
        assert cgroup_dirs and all(Path(d).is_dir() for d in cgroup_dirs)  # noqa: ASYNC240
    # the host's stop removed every worker's cgroup
    assert not any(Path(d).exists() for d in cgroup_dirs)  # noqa: ASYNC240


#: granted, and no value: neither [secrets] nor PLUGBAY_SECRET_API_KEY
GRANTED_UNSET = '[policy.grants]\n"{id}" = ["secret:api-key"]\n'


def said_to_be_unset(caught: pytest.ExceptionInfo[ConfigError], plugin_id: str) -> None:
    text = str(caught.value)
    assert caught.value.plugin == plugin_id, text
    assert "secret 'api-key' is granted but has no value on this host" in text
    # what to set, where: the operator's to fix, not the plugin's own error nor a denial
    assert '[secrets] (api-key = "...")' in text and "PLUGBAY_SECRET_API_KEY" in text
    assert "not granted" not in text and "own error" not in text


@pytest.mark.parametrize("isolation", ["process", "inline"])
async def test_a_granted_secret_without_a_value_is_the_operators_setting_not_a_denial(
    plugins: PluginFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    monkeypatch.delenv("PLUGBAY_SECRET_API_KEY", raising=False)
    plugins("acme.s", SECRETIVE, extra="[permissions]\nsecrets = ['api-key']\n")
    config = tmp_path / "plugbay.toml"
    trusted = '[policy]\ninline = ["acme.s"]\n' if isolation == "inline" else ""
    config.write_text(trusted + GRANTED_UNSET.format(id="acme.s"))
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, config_file=config
    ) as host:
        assert host.plugin("acme.s").placement.isolation == isolation  # type: ignore[union-attr]
        with pytest.raises(ConfigError) as caught:
            await host.call("acme.s", "secret", name="api-key")
        said_to_be_unset(caught, "acme.s")
        # a secret it was never granted is still a denial
        with pytest.raises(PermissionDenied, match="secret 'db' was not granted"):
            await host.call("acme.s", "secret", name="db")


@_wasm.needs_toolchain
async def test_a_granted_secret_without_a_value_is_said_so_to_a_wasm_module_too(
    plugins: PluginFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLUGBAY_SECRET_API_KEY", raising=False)
    wasm = Path(__file__).parent / "wasm_plugins"  # the attacker's 'ask' reaches host imports
    commands = (wasm / "attacker.toml").read_text() + "[permissions]\nsecrets = ['api-key']\n"
    source = (wasm / "attacker.c").read_text()
    _wasm.write_plugin(plugins.root / "wasm", "acme.wasm", source, commands)
    config = tmp_path / "plugbay.toml"
    config.write_text(GRANTED_UNSET.format(id="acme.wasm"))
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, config_file=config
    ) as host:
        with pytest.raises(ConfigError) as caught:
            await host.call("acme.wasm", "ask", via="secret", request='{"name": "api-key"}')
        said_to_be_unset(caught, "acme.wasm")


def plugbay(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "plugbay.cli", *args], cwd=cwd, capture_output=True, text=True,
        env=env, timeout=120,
    )  # fmt: skip


def test_doctor_reports_every_layer_active_and_the_policy(tmp_path: Path) -> None:
    (tmp_path / "plugbay.toml").write_text('[policy]\ninline = ["acme.gateway"]\n')
    result = plugbay("doctor", "--json", "--strict", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = [layer["name"] for layer in report["layers"]]
    assert names == [
        "cgroup", "netns", "userns", "environ", "rlimits", "no_new_privs", "landlock", "seccomp",
    ]  # fmt: skip
    inactive = [
        f"{layer['name']}: {layer['detail']}" for layer in report["layers"] if not layer["active"]
    ]
    assert not inactive  # the issue: on these machines every layer must be active
    assert report["policy"]["inline"] == ["acme.gateway", "core/* plugins"]
    # what enforces the storage quota here, and which layers' denials become events
    assert report["storage_quota"]["enforced_by"] == (
        "enforced by the kernel (loop-mounted ext4 image)"
    )
    reported = {row["layer"]: row["reported"] for row in report["denials"]}
    assert reported["seccomp"] == "always" and reported["quota"] == "always"
    assert reported["landlock"] in ("always", "partly")
    shown = plugbay("doctor", cwd=tmp_path)
    assert "all 8 layers active" in shown.stdout and "landlock" in shown.stdout
    assert "storage quota: enforced by the kernel (loop-mounted ext4 image)" in shown.stdout
    assert "denials by" in shown.stdout and "SECCOMP_RET_USER_NOTIF" in shown.stdout
    (tmp_path / "plugbay.toml").write_text("[policy]\ninlin = []\n")
    bad = plugbay("doctor", cwd=tmp_path)
    assert bad.returncode == 1 and "[policy] has no key 'inlin'" in bad.stderr


def test_info_shows_where_a_plugin_runs_and_why(plugins: PluginFactory, tmp_path: Path) -> None:
    from tests._running import plugbay_run

    plugins("acme.boxed", extra='isolation = "inline"\n[resources]\nmemory = "64MiB"\n')
    with plugbay_run(tmp_path, "--plugins", str(plugins.root)):
        shown = plugbay("info", "acme.boxed", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        text = " ".join(shown.stdout.split())
        assert "sandboxed worker: not trusted by the host's policy" in text
        assert "its manifest asks for inline, which only the operator can allow" in text
        assert "memory 64 MiB" in text and "landlock" in text
        assert "storage quota enforced by the kernel (loop-mounted ext4 image)" in text
        data = json.loads(plugbay("info", "acme.boxed", "--json", cwd=tmp_path).stdout)
    assert data["sandbox"]["sandboxed"] is True and data["limits"]["memory"] == 64 * MiB


def test_doctor_help_says_what_it_checks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plugbay.cli", "doctor", "--help"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=60,
    )  # fmt: skip
    assert "isolation layers" in result.stdout and "--strict" in result.stdout


def test_a_wildcard_port_grant_allows_that_address_only() -> None:
    import socket

    from plugbay.isolation.guard import Guard

    reported: list[dict[str, object]] = []
    guard = Guard("acme.net", {"network": ["127.0.0.1:*"]}, reported.append)
    with socket.socket() as sock:
        guard._hook("socket.connect", (sock, ("127.0.0.1", 5555)))  # allowed: no error
        with pytest.raises(PermissionError, match=r"connecting to 10\.0\.0\.1:5555"):
            guard._hook("socket.connect", (sock, ("10.0.0.1", 5555)))
    assert reported == [
        {
            "kind": "denied",
            "operation": "connecting to 10.0.0.1:5555",
            "permission": "network:10.0.0.1:5555",
            "layer": "netns/landlock",
        }
    ]


def test_a_grant_that_is_not_a_permission_is_a_config_error_with_the_forms(
    tmp_path: Path,
) -> None:
    """'netwrk:1.2.3.4:5' in [policy.grants] was kept without a word and matched nothing."""
    config = {
        "policy": {"grants": {"utility.formatters": ["network:1.2.3.4:5", "netwrk:1.2.3.4:5"]}}
    }
    with pytest.raises(ConfigError) as caught:
        IsolationPolicy.from_config(config, where="plugbay.toml")
    said = str(caught.value)
    assert "[policy.grants] 'utility.formatters': 'netwrk:1.2.3.4:5' is not a permission" in said
    assert "plugbay.toml" in said and "network:HOST:PORT" in said and "subprocess" in said
    (tmp_path / "plugbay.toml").write_text(
        '[policy.grants]\n"utility.formatters" = ["netwrk:1.2.3.4:5"]\n'
    )
    doctor = plugbay("doctor", cwd=tmp_path)
    assert doctor.returncode == 1 and "'netwrk:1.2.3.4:5' is not a permission" in doctor.stderr
    # the CLI's check is the same one
    granted = plugbay("grant", "utility.formatters", "netwrk:1.2.3.4:5", cwd=tmp_path)
    assert granted.returncode == 2 and "network:HOST:PORT" in granted.stderr


async def test_a_grant_for_no_plugin_found_is_a_problem_naming_the_closest(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """'integration.ircc' in [policy.grants] started with no message; it may be installed
    later, so the host still starts."""
    plugins("integration.irc")
    config_file = tmp_path / "plugbay.toml"
    config_file.write_text('[policy.grants]\n"integration.ircc" = ["subprocess"]\n')
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, config_file=config_file,
        inline=["*"],
    ) as host:  # fmt: skip
        said = {(p.where, p.message, p.hint) for p in host.problems}
        assert (f"{config_file}:2",
                "'integration.ircc' is not the id of any plugin found",
                "did you mean 'integration.irc'?") in said, said  # fmt: skip
        assert str(host.plugin("integration.irc").state) == "active"
