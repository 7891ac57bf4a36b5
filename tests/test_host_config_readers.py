"""Every command that reads the host config (``plugbay.toml``) reads it the same way:
``plugbay run``, ``plugbay doctor``, ``plugbay env list`` and the signature check of
``plugbay install`` refuse a broken file with one message (what, where, what to do),
and take a good one alike (``plugbay.model.host_config``)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._cli import plugbay, start_plugbay
from tests._index import plugin_wheel

WHEEL = "dist/acme_hello-1.0.0-py3-none-any.whl"
#: the commands that read the host config, each as a user runs it in the host's directory
COMMANDS = {
    "run": ("run", "--once", "--no-http", "--no-metrics"),
    "doctor": ("doctor",),
    "env list": ("env", "list"),
    "install": ("install", WHEEL, "--yes"),
}


def host_dir(tmp_path: Path) -> Path:
    """A host's directory: an empty plugins directory and an unsigned plugin wheel."""
    (tmp_path / "plugins").mkdir()
    plugin_wheel(tmp_path / "dist", "acme.hello", "1.0.0")
    assert (tmp_path / WHEEL).is_file()
    return tmp_path


def run_all(cwd: Path, *extra: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each command of :data:`COMMANDS` with ``extra``, run at once in ``cwd`` to its end."""
    started = {name: start_plugbay(*argv, *extra, cwd=cwd) for name, argv in COMMANDS.items()}
    done = {}
    for name, proc in started.items():
        try:
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return done


def said(result: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed, as one line."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "error: " in result.stderr, result.stderr
    return " ".join(result.stderr.split("error: ", 1)[1].split())


def _write(text: str | bytes) -> Callable[[Path], tuple[str, ...]]:
    def write(cwd: Path) -> tuple[str, ...]:
        data = text.encode() if isinstance(text, str) else text
        (cwd / "plugbay.toml").write_bytes(data)
        return ()

    return write


def _directory(cwd: Path) -> tuple[str, ...]:
    (cwd / "plugbay.toml").mkdir()
    return ()


def _link_loop(cwd: Path) -> tuple[str, ...]:
    # cannot be opened, by root too (a file without read permission root still reads)
    (cwd / "plugbay.toml").symlink_to("plugbay.toml")
    return ()


def _no_read_permission(cwd: Path) -> tuple[str, ...]:
    (cwd / "plugbay.toml").write_text("[policy]\n")
    (cwd / "plugbay.toml").chmod(0)
    return ()


def _missing(cwd: Path) -> tuple[str, ...]:
    # ./plugbay.toml, read when no --config is given, a link to nothing (a --config
    # naming nothing is a usage error: test_a_config_named_that_does_not_exist_…)
    (cwd / "plugbay.toml").symlink_to("nothere.toml")
    return ()


HOW = "(--config, PLUGBAY_CONFIG)"
BROKEN = [
    pytest.param(
        _write("[policy]\ninline = [acme]\n"),
        "the host config is not valid TOML: Invalid value (at line 2, column 11) "
        "(at plugbay.toml:2). fix the TOML syntax (strings need quotes, tables are [name], "
        "keys are key = value)",
        id="not-toml",
    ),
    pytest.param(
        _write('[policy]\ninline = []\ntrust-core = "yes"\n'),
        "[policy] trust-core must be true or false, not 'yes' (at plugbay.toml). "
        "write trust-core = true (bundled core/ plugins run inline) or false",
        id="wrong-type-trust-core",
    ),
    pytest.param(
        _write("[policy]\nrequire-signed = 1\n"),
        "[policy] require-signed must be true or false, not 1 (at plugbay.toml). "
        "write require-signed = true (install only signed wheels) or false",
        id="wrong-type-require-signed",
    ),
    pytest.param(
        _write('policy = "strict"\n'),
        "[policy] must be a table (at plugbay.toml). "
        "write it as a [policy] section of key = value lines",
        id="policy-not-a-table",
    ),
    pytest.param(
        _write(b'[policy]\ninline = ["acme.\xff"]\n'),
        "the host config is not UTF-8 text (byte 0xff) (at plugbay.toml:2). save it as UTF-8",
        id="not-utf8",
    ),
    pytest.param(
        _link_loop,
        "the host config cannot be read: Too many levels of symbolic links "
        f"(at plugbay.toml). check the file and the host config's path {HOW}",
        id="unreadable",
    ),
    pytest.param(
        _no_read_permission,
        "the host config cannot be read: permission denied (at plugbay.toml). let the user "
        "plugbay runs as read it (chmod, chown), or point --config at a copy it can read",
        id="no-read-permission",
        marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file"),
    ),
    pytest.param(
        _directory,
        "the host config is a directory, not a file (at plugbay.toml). give the TOML file "
        f"itself, not its directory, as the host config's path {HOW}",
        id="directory",
    ),
    pytest.param(
        _missing,
        "the host config file does not exist (at plugbay.toml). check the host config's "
        f"path {HOW}, or give none to run with the default policy",
        id="missing",
    ),
]


@pytest.mark.parametrize(("break_it", "message"), BROKEN)
def test_every_command_refuses_a_broken_host_config_with_one_message(
    tmp_path: Path, break_it: Callable[[Path], tuple[str, ...]], message: str
) -> None:
    cwd = host_dir(tmp_path)
    extra = break_it(cwd)
    results = run_all(cwd, *extra)
    assert {name: said(r) for name, r in results.items()} == dict.fromkeys(COMMANDS, message)
    # refused before anything was installed from it
    assert not (cwd / ".plugbay" / "store" / "acme.hello").exists()


def test_a_config_named_that_does_not_exist_is_a_usage_error_for_every_command(
    tmp_path: Path,
) -> None:
    """`--config nothere.toml` (a typo) is refused before the command runs, naming it: a
    command that went on would run without the user's policy."""
    cwd = host_dir(tmp_path)
    for name, result in run_all(cwd, "--config", "nothere.toml").items():
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        text = " ".join(result.stderr.replace("│", " ").split())
        assert "'--config'" in text and "'nothere.toml' does not exist" in text, (name, text)
    assert not (cwd / ".plugbay").exists()


def test_each_command_keeps_its_error_type_with_the_same_words(tmp_path: Path) -> None:
    cwd = host_dir(tmp_path)
    (cwd / "plugbay.toml").write_text("[policy]\ninline = [acme]\n")
    doctor = start_plugbay("doctor", "--json", cwd=cwd)
    install = start_plugbay("install", WHEEL, "--yes", "--json", cwd=cwd)
    errors = {}
    for name, proc in (("doctor", doctor), ("install", install)):
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1, stdout
        errors[name] = json.loads(stdout)["error"]
    assert errors["doctor"]["code"] == "config_invalid"
    assert errors["install"]["code"] == "signature_error"
    for key in ("message", "where", "hint", "text"):
        assert errors["doctor"][key] == errors["install"][key]
    assert errors["install"]["where"] == "plugbay.toml:2"


def test_no_file_is_the_default_policy_for_every_command(tmp_path: Path) -> None:
    cwd = host_dir(tmp_path)
    results = run_all(cwd)
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
    assert "installed acme.hello 1.0.0" in results["install"].stdout


def test_a_good_host_config_is_read_alike_by_every_command(tmp_path: Path) -> None:
    cwd = host_dir(tmp_path)
    (cwd / "plugbay.toml").write_text(
        '[policy]\ninline = ["acme.*"]\nrequire-signed = true\n[policy.limits]\nmemory = "1GiB"\n'
    )
    results = run_all(cwd)
    for name in ("run", "env list"):
        assert results[name].returncode == 0, (name, results[name].stderr)
    assert "runs inline (trusted): acme.*, core/* plugins" in results["doctor"].stdout
    # the signature check read require-signed = true from the same file: the unsigned
    # wheel is refused
    refused = said(results["install"])
    assert "the wheel is not signed, and this host requires signed plugins" in refused
    doctor = start_plugbay("doctor", "--json", cwd=cwd)
    stdout, _ = doctor.communicate(timeout=120)
    policy = json.loads(stdout)["policy"]
    assert policy["config"] == "plugbay.toml"
    assert policy["caps"]["memory"] == 1 << 30


@pytest.mark.parametrize(("break_it", "message"), BROKEN)
def test_debug_refuses_a_broken_host_config_in_the_same_words(
    tmp_path: Path, break_it: Callable[[Path], tuple[str, ...]], message: str
) -> None:
    # 'plugbay debug' found ./plugbay.toml its own way: a directory by that name was
    # taken for no file, and it debugged under the default policy
    cwd = host_dir(tmp_path)
    extra = break_it(cwd)
    proc = start_plugbay("debug", "acme.hello", "hello", "--no-break", *extra, cwd=cwd)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert said(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)) == message


#: what ``plugbay run`` refuses as it starts, past the file's syntax: ``plugbay doctor``
#: refuses it too, in the same words
REFUSED_AT_START = [
    pytest.param(
        '[monitor]\ninterval = "fast"\n',
        "bad [monitor] settings: Expected `float`, got `str` - at `monitor.interval` "
        "(at plugbay.toml). docs/operators.md (Monitoring: Alerts) lists every key and its "
        "default",
        id="monitor-wrong-type",
    ),
    pytest.param(
        "[monitor]\nhealth-timeout = 0\n",
        "monitor.health-timeout must be above 0, not 0.0 (at plugbay.toml). give a number of "
        "seconds such as 1.0",
        id="monitor-out-of-range",
    ),
    pytest.param(
        "monitor = 5\n",
        "[monitor] must be a table of settings, not 5 (at plugbay.toml). write it as a "
        "[monitor] section of key = value lines (docs/operators.md, Monitoring: Alerts, "
        "lists them)",
        id="monitor-not-a-table",
    ),
    pytest.param(
        "[secrets]\napi-key = 12345\n",
        "[secrets] api-key must be a string, not 12345 (at plugbay.toml). quote the value: "
        'api-key = "..." (a secret reaches the plugin as text)',
        id="secret-not-a-string",
    ),
    pytest.param(
        "[secrets.api-key]\nvalue = 1\n",
        "[secrets] api-key must be a string, not {'value': 1} (at plugbay.toml). quote the "
        'value: api-key = "..." (a secret reaches the plugin as text)',
        id="secret-a-table",
    ),
    pytest.param(
        '[python]\nindex = "https://pypi.example/simple"\n',
        "[python] has no key 'index' (at plugbay.toml). known keys: allow-direct-references, "
        "find-links, index-url, offline",
        id="python-unknown-key",
    ),
    pytest.param(
        "[python]\noffline = 1\n",
        "[python] offline must be true or false, not 1 (at plugbay.toml). write offline = "
        "true or offline = false (unquoted) under [python] in plugbay.toml",
        id="python-not-a-bool",
    ),
    pytest.param(
        'plugins = "acme.calc"\n',
        "[plugins] must be a table of plugin ids (at plugbay.toml). give each plugin its own "
        'table of config values: [plugins."acme.calc"] then greeting = "Hi" on the next line',
        id="plugins-not-a-table",
    ),
]


@pytest.mark.parametrize(("text", "message"), REFUSED_AT_START)
def test_doctor_refuses_a_table_run_refuses_at_start_in_its_words(
    tmp_path: Path, text: str, message: str
) -> None:
    """`plugbay doctor` said the machine was ready with a `[monitor]`, `[secrets]`,
    `[python]` or `[plugins]` that `plugbay run` refused at start (or, for a secret, ran
    with its Python spelling)."""
    cwd = host_dir(tmp_path)
    (cwd / "plugbay.toml").write_text(text)
    started = {name: start_plugbay(*COMMANDS[name], cwd=cwd) for name in ("run", "doctor")}
    for name, proc in started.items():
        try:
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
        done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        assert said(done) == message, name


def test_a_bounds_mistake_names_the_file_the_table_and_what_is_allowed(
    tmp_path: Path,
) -> None:
    """A `[policy.bounds]` error named neither the file nor a TOML spelling of the
    per-plugin table (`[policy.bounds.plugins.'acme.x']`)."""
    cwd = host_dir(tmp_path)
    cases = {
        '[policy.bounds]\nlog-burst = "lots"\n': "[policy.bounds] log-burst must be a number "
        "above 0, not 'lots' (at plugbay.toml). e.g. log-burst = 1000.0 (its default); "
        "docs/security.md (Bounds) says what each key bounds",
        '[policy.bounds.plugins."acme.x"]\nmetric-series = 2.5\n': "[policy.bounds.plugins."
        '"acme.x"] metric-series must be a whole number above 0, not 2.5 (at plugbay.toml). '
        "e.g. metric-series = 500 (its default); docs/security.md (Bounds) says what each "
        "key bounds",
        "[policy.bounds]\nlog-bust = 5\n": "[policy.bounds] has no key 'log-bust' (at "
        "plugbay.toml). known keys: ",
    }
    for text, message in cases.items():
        (cwd / "plugbay.toml").write_text(text)
        done = plugbay(*COMMANDS["doctor"], cwd=cwd)
        assert said(done).startswith(message), text
