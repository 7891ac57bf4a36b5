"""Every ``--json`` answers in the one shape ``docs/cli-json.md`` documents for it, whether
a host started for the command answers or a running one, through its API."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from plugbay.cli import app
from tests._cli import PLUGBAY, cli_env, plugbay
from tests._running import plugbay_run
from tests._wheels import write_wheel
from tests.conftest import PluginFactory

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli-json.md"
#: commands whose shapes tests/test_trials_cli.py checks (they need a running host)
TRIALS = frozenset({"record", "replay", "canary", "shadow", "bisect"})
#: what only a running host answers (test_a_running_host_answers_in_the_same_shapes)
LIVE = frozenset({"events", "load", "unload"})
#: sub-commands on the state directory (test_the_sub_commands_answer_in_the_documented_shapes)
ON_STATE = frozenset(
    {"token create", "token list", "token revoke", "state check", "state backup",
     "state restore", "env list", "env gc"}
)  # fmt: skip
#: a section's heading names its command, a group's sub-command by both words
#: (`## \`plugbay env list --json\``); its first json block is the example
_SECTION = re.compile(
    r"^## `plugbay ([a-z][a-z-]*(?: [a-z][a-z-]*)?)[^`]*`\s*$(.*?)^```json\n(.*?)^```", re.M | re.S
)


def documented() -> dict[str, Any]:
    """Each command's example answer, by command name."""
    text = DOC.read_text(encoding="utf-8")
    examples: dict[str, Any] = {}
    for name, _, example in _SECTION.findall(text):
        examples[name] = [json.loads(line) for line in example.splitlines() if line.strip()] \
            if name == "logs" else json.loads(example)  # fmt: skip
    return examples


def commands_with_json() -> set[str]:
    """Every command that takes ``--json``, a group's sub-commands by both words
    (``env list``)."""

    def walk(group: Any, prefix: str) -> Iterator[str]:
        for name, command in getattr(group, "commands", {}).items():
            if any("--json" in getattr(p, "opts", ()) for p in command.params):
                yield prefix + name
            yield from walk(command, f"{prefix}{name} ")

    return set(walk(typer.main.get_command(app), ""))


def same_shape(answer: Any, example: Any, where: str) -> None:
    """The answer has the example's type and keys; so do the objects of a list (each one),
    and the objects and lists one level in (their first element)."""
    assert type(answer) is type(example), (
        f"{where}: {type(answer).__name__}, documented {type(example).__name__}"
    )
    if isinstance(example, list):
        if example and answer:
            for i, item in enumerate(answer):
                same_shape(item, example[0], f"{where}[{i}]")
        return
    if not isinstance(example, dict):
        return
    assert set(answer) == set(example), (
        f"{where}: keys {sorted(set(answer) - set(example))} not documented, "
        f"{sorted(set(example) - set(answer))} documented but missing"
    )
    for key, value in example.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for i, item in enumerate(answer[key]):
                assert set(item) == set(value[0]), f"{where}.{key}[{i}]: keys {sorted(item)}"


def answer(*args: str, cwd: Path, ok: tuple[int, ...] = (0,)) -> Any:
    result = plugbay(*args, cwd=cwd)
    assert result.returncode in ok, result.stderr
    if args[0] == "logs":
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return json.loads(result.stdout)


def test_every_command_with_json_is_documented() -> None:
    assert commands_with_json() == set(documented())


@pytest.fixture
def workdir(plugins: PluginFactory, tmp_path: Path) -> Path:
    plugins(
        "acme.calc",
        """
        from plugbay import UtilityPlugin, command

        class P(UtilityPlugin):
            @command
            def add(self, a: int, b: int = 1) -> int:
                \"\"\"Add two integers.\"\"\"
                self.context.logger.warning("adding %s and %s", a, b)
                return a + b
        """,
    )
    plugins("acme.user", extra='[dependencies]\n"acme.calc" = "^1"\n')
    return tmp_path


def test_in_process_answers_have_the_documented_shapes(
    workdir: Path, plugins: PluginFactory
) -> None:
    docs = documented()
    calc = plugins.root / "acme.calc-1.0.0"
    newer = workdir / "calc-1.1.0"
    shutil.copytree(calc, newer)
    manifest = newer / "plugin.toml"
    manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.1.0"'))

    answers: dict[str, Any] = {
        "list": answer("list", "--json", cwd=workdir),
        "info": answer("info", "acme.calc", "--json", cwd=workdir),
        "call": answer("call", "acme.calc", "add", "a=2", "--json", cwd=workdir),
        "deps": answer("deps", "--json", cwd=workdir),
        "doctor": answer("doctor", "--json", cwd=workdir),
        "health": answer("health", "--json", cwd=workdir, ok=(0, 1)),
        "nodes": answer("nodes", "--json", cwd=workdir),
        "reload": answer("reload", "acme.calc", "--json", cwd=workdir),
        "install": answer("install", str(newer), "--json", cwd=workdir),
        "grants": answer("grants", "--json", cwd=workdir),
    }
    answers["upgrade"] = answer("upgrade", "acme.calc", "--json", cwd=workdir)
    assert answers["upgrade"]["changes"] == {"acme.calc": ["1.0.0", "1.1.0"]}
    answers["rollback"] = answer("rollback", "acme.calc", "--json", cwd=workdir)
    assert (answers["rollback"]["from"], answers["rollback"]["to"]) == ("1.1.0", "1.0.0")
    answers["history"] = answer("history", "--json", cwd=workdir)
    answers["alerts"] = answer("alerts", "--all", "--json", cwd=workdir)
    answers["logs"] = answer("logs", "acme.calc", "--json", cwd=workdir)
    assert answers["logs"], "the warning the call logged is kept"
    answers["validate"] = answer("validate", str(calc), "--json", cwd=workdir)
    assert plugbay("keygen", "me", cwd=workdir).returncode == 0
    built = plugbay("build", str(calc), "--out", "dist", cwd=workdir)
    assert built.returncode == 0, built.stderr
    [wheel] = (workdir / "dist").glob("*.whl")
    assert plugbay("sign", str(wheel), "--key", "me.key", cwd=workdir).returncode == 0
    answers["verify"] = answer("verify", str(wheel), "--key", "me.pub", "--json", cwd=workdir)
    answers["index build"] = answer("index", "build", "dist", "--json", cwd=workdir)
    assert [(p["id"], p["signed"]) for p in answers["index build"]["plugins"]] == [
        ("acme.calc", True)
    ]
    answers["search"] = answer("search", "acme", "--index", "dist", "--json", cwd=workdir)
    assert [r["id"] for r in answers["search"]] == ["acme.calc"]
    answers["config"] = answer("config", "acme.calc", "--json", cwd=workdir)
    answers["uninstall"] = answer("uninstall", "acme.calc@1.1.0", "--json", cwd=workdir)
    assert answers["uninstall"]["remaining"] == ["1.0.0"]  # the directory's version stays

    # the upgrade trials act on a running host's live calls: tests/test_trials_cli.py
    assert set(answers) == set(docs) - TRIALS - LIVE - ON_STATE
    # no host runs here: info and health answer from the plugins on disk (issue 15), each
    # "not running"; their full shapes are a running host's (the next test)
    offline = {"info": answers.pop("info"), "health": answers.pop("health")}
    assert offline["info"]["state"] == "not running" and offline["info"]["id"] == "acme.calc"
    assert set(offline["info"]) - {"source"} <= set(docs["info"])
    assert offline["health"]["host"]["health"] == "failing"
    for name, value in answers.items():
        same_shape(value, docs[name], name)


def test_a_running_host_answers_in_the_same_shapes(workdir: Path, plugins: PluginFactory) -> None:
    docs = documented()
    with plugbay_run(workdir):
        for args in (
            ("list",),
            ("info", "acme.calc"),
            ("call", "acme.calc", "add", "a=2"),
            ("health",),
            ("nodes",),
            ("history", "acme.calc"),
            ("logs", "acme.calc"),
            ("grants",),
        ):
            same_shape(answer(*args, "--json", cwd=workdir, ok=(0, 1)), docs[args[0]], args[0])
        manifest = next(plugins.root.glob("acme.calc-*")) / "plugin.toml"
        manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.0.1"'))
        follow = subprocess.Popen(
            [*PLUGBAY, "events", "--count", "1", "--json"], cwd=workdir, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
        )  # fmt: skip
        assert follow.stderr is not None and "following" in follow.stderr.readline()
        reloaded = answer("reload", "acme.calc", "--json", cwd=workdir)
        events, _ = follow.communicate(timeout=60)
        same_shape(json.loads(events), docs["events"], "events")
        same_shape(reloaded, docs["reload"], "reload")
        assert (reloaded["from"], reloaded["to"], reloaded["state"]) == ("1.0.0", "1.0.1", "active")
        back = answer("rollback", "acme.calc", "--json", cwd=workdir)
        same_shape(back, docs["rollback"], "rollback")
        assert (back["from"], back["to"]) == ("1.0.1", "1.0.0")
        unloaded = answer("unload", "acme.user", "--json", cwd=workdir)
        same_shape(unloaded, docs["unload"], "unload")
        assert (unloaded["state"], unloaded["stopped"]) == ("stopped", ["acme.user"])
        loaded = answer("load", "acme.user", "--json", cwd=workdir)
        same_shape(loaded, docs["load"], "load")
        assert (loaded["state"], loaded["started"]) == ("active", ["acme.user"])

        # the sub-commands on its state directory, beside it
        made = answer("token", "create", "--scope", "read", "--json", cwd=workdir)
        listed = answer("token", "list", "--json", cwd=workdir)
        assert [t["id"] for t in listed] == [made["id"]]
        revoked = answer("token", "revoke", made["id"], "--json", cwd=workdir)
        backup = answer("state", "backup", "--json", cwd=workdir)
        assert (workdir / backup["backup"]).is_file()
        checked = answer("state", "check", "--json", cwd=workdir)
        assert {b["manual"] for b in checked["backups"]} == {True, False}  # the host's too
        for name, value in (("token create", made), ("token list", listed),
                            ("token revoke", revoked), ("state backup", backup),
                            ("state check", checked)):  # fmt: skip
            same_shape(value, docs[name], name)
        refused = plugbay("state", "restore", "--json", cwd=workdir)
        assert refused.returncode == 1 and "serves" in refused.stdout, refused.stdout
        same_shape(json.loads(refused.stdout), documented_error(), "state restore")


def test_the_sub_commands_answer_in_the_documented_shapes(workdir: Path) -> None:
    """token, state and env on the state directory, no host running (index build: in
    test_in_process_answers_have_the_documented_shapes; beside a running host: above)."""
    docs = documented()
    made = answer("token", "create", "--scope", "call:acme.calc", "--scope", "read",
                  "--note", "wall screen", "--json", cwd=workdir)  # fmt: skip
    assert made["scopes"] == ["call:acme.calc", "read"]
    answers: dict[str, Any] = {"token create": made}
    answers["state backup"] = answer("state", "backup", "--json", cwd=workdir)
    answers["token revoke"] = answer("token", "revoke", made["id"], "--json", cwd=workdir)
    answers["token list"] = answer("token", "list", "--json", cwd=workdir)
    assert [(t["id"], t["status"]) for t in answers["token list"]] == [(made["id"], "revoked")]
    answers["state check"] = answer("state", "check", "--json", cwd=workdir)
    assert [b["manual"] for b in answers["state check"]["backups"]] == [True]
    answers["state restore"] = answer("state", "restore", "--json", cwd=workdir)
    # the token was revoked after the backup: revoked again in the restored database
    assert answers["state restore"]["revoked_again"]["tokens"] == [made["id"]]

    # an environment: a sandboxed plugin with a Python requirement, from a local wheel
    wheels = workdir / "wheels"
    write_wheel(wheels, "libdemo", "1.0", {"libdemo/__init__.py": 'VERSION = "1.0"\n'})
    extra = PluginFactory(workdir / "extra")
    needs = extra("acme.env", extra='python-dependencies = ["libdemo==1.*"]\n')
    done = plugbay("install", str(needs), "--find-links", str(wheels), "--offline", cwd=workdir)
    assert done.returncode == 0, done.stderr
    answers["env list"] = answer("env", "list", "--json", cwd=workdir)
    assert [r["plugins"] for r in answers["env list"]["environments"]] == [["acme.env 1.0.0"]]
    # links to another plugbay's runtime (as after an upgrade of plugbay): env gc removes them
    (workdir / ".plugbay" / "envs" / ".runtime-0123456789ab").mkdir()
    answers["env gc"] = answer("env", "gc", "--json", cwd=workdir)
    assert [Path(p).name for p in answers["env gc"]["removed"]] == [".runtime-0123456789ab"]

    assert set(answers) == ON_STATE
    for name, value in answers.items():
        same_shape(value, docs[name], name)
    for args in (
        ("token", "revoke", made["id"]),  # revoked already
        ("token", "create", "--scope", "everything"),  # a wrong option value: exit 2
        ("state", "check", "--state", "nowhere"),
        ("index", "build", "nowhere"),
    ):
        failed = plugbay(*args, "--json", cwd=workdir)
        wanted = 2 if "--scope" in args else 1
        assert failed.returncode == wanted, (args, failed.stdout, failed.stderr)
        same_shape(json.loads(failed.stdout), documented_error(), " ".join(args))
    # a file to read named that does not exist is a usage error (exit 2), in the same shape
    for args in (("env", "gc", "--config", "nothing.toml"), ("state", "restore", "--from", "x")):
        refused = plugbay(*args, "--json", cwd=workdir)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        same_shape(json.loads(refused.stdout), documented_error(), " ".join(args))


def test_an_error_is_json_too(workdir: Path) -> None:
    result = plugbay("info", "acme.nothing", "--json", cwd=workdir)
    assert result.returncode == 1
    same_shape(json.loads(result.stdout), documented_error(), "error")


def test_search_with_no_index_named_answers_a_json_error(tmp_path: Path) -> None:
    """A usage error (exit 2) all the same, but a --json reader reads it on stdout in the
    common error shape, with the way to make an index."""
    from tests._cli import run_cli

    done = run_cli(
        [*PLUGBAY, "search", "acme", "--json"], cwd=tmp_path, env=cli_env(drop=["PLUGBAY_INDEX"])
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    answer = json.loads(done.stdout)
    same_shape(answer, documented_error(), "search")
    assert answer["error"]["message"] == "no plugin index is named"
    assert "'plugbay index build DIR'" in answer["error"]["hint"]


def documented_error() -> Any:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"^## When a command fails.*?^```json\n(.*?)^```", text, re.M | re.S)
    assert block is not None
    return json.loads(block.group(1))
