"""record, replay, upgrade --shadow/--canary and bisect from the command line, against
a real ``plugbay run`` (its API) with sandboxed workers."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests._cli import plugbay
from tests._running import Running, plugbay_run
from tests._trials import calc
from tests.conftest import PluginFactory
from tests.test_cli_json import documented, same_shape


def _calls(host: Running, inputs: range, *, token: str | None = None) -> list[int | None]:
    """Live calls through the API: each answer, or None for a failure."""
    answers: list[int | None] = []
    with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as client:
        for a in inputs:
            body = {"a": a, "b": 1} | ({"token": token} if token else {})
            r = client.post("/api/v1/plugins/acme.calc/commands/add", json=body)
            answers.append(r.json()["result"] if r.status_code == 200 else None)
    return answers


@pytest.mark.slow
def test_record_export_replay_gate_a_deployment(plugins: PluginFactory, tmp_path: Path) -> None:
    calc(plugins.root / "calc", "1.0.0")
    with plugbay_run(tmp_path) as host:
        started = plugbay("record", "acme.calc", "--json", cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["recording"] is True
        same_shape(json.loads(started.stdout), documented()["record"], "record")
        assert _calls(host, range(12)) == [a + 1 for a in range(12)]
        _calls(host, range(1), token="do-not-keep")
        exported = plugbay("record", "acme.calc", "--export", "calc.jsonl", cwd=tmp_path)
        assert exported.returncode == 0 and "13 recorded call(s)" in exported.stdout
        assert b"do-not-keep" not in (tmp_path / "calc.jsonl").read_bytes()
        assert plugbay("install", str(calc(tmp_path / "v11", "1.1.0", wrong=True)),
                       cwd=tmp_path).returncode == 0  # fmt: skip
        assert (
            plugbay("install", str(calc(tmp_path / "v12", "1.2.0")), cwd=tmp_path).returncode == 0
        )
        # replay beside the running host: it is never asked, its data never opened
        bad = plugbay("replay", "calc.jsonl", "--version", "1.1.0", cwd=tmp_path)
        good = plugbay("replay", "calc.jsonl", "--version", "1.2.0", "--json", cwd=tmp_path)
        stopped = plugbay("record", "acme.calc", "--stop", cwd=tmp_path)
        assert stopped.returncode == 0 and "stopped recording" in stopped.stdout
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "add" in bad.stdout and "difference(s)" in bad.stdout
    assert 'add {"a": 3, "b": 1}: new-error' in bad.stdout
    assert "redacted" in bad.stderr
    assert good.returncode == 0, good.stdout + good.stderr
    report = json.loads(good.stdout)
    assert report["ok"] and report["commands"]["add"]["same"] == 12
    same_shape(report, documented()["replay"], "replay")
    # without a running host, --export copies what the last host kept
    again = plugbay("record", "acme.calc", "--export", "again.jsonl", cwd=tmp_path)
    assert again.returncode == 0 and "13 recorded call(s)" in again.stdout


@pytest.mark.slow
def test_upgrade_shadow_then_canary_then_bisect(plugins: PluginFactory, tmp_path: Path) -> None:
    calc(plugins.root / "calc", "1.0.0")
    plugins("acme.other")
    with plugbay_run(tmp_path) as host:
        assert plugbay("install", str(calc(tmp_path / "v11", "1.1.0", wrong=True)),
                       cwd=tmp_path).returncode == 0  # fmt: skip
        shadow = plugbay("upgrade", "acme.calc", "--shadow", "--no-wait", cwd=tmp_path)
        assert shadow.returncode == 0, shadow.stderr
        assert _calls(host, range(20)) == [a + 1 for a in range(20)]
        shown = plugbay("shadow", "acme.calc", "--json", cwd=tmp_path)
        summary = json.loads(shown.stdout)
        assert summary["state"] == "running" and summary["mirrored"] <= 20
        same_shape(summary, documented()["shadow"], "shadow")
        assert plugbay("shadow", "acme.calc", "--stop", cwd=tmp_path).returncode == 0

        # the canary decides while live calls arrive; it exits 1 when it rolled back
        answers: list[int | None] = []
        load = threading.Thread(target=lambda: answers.extend(_calls(host, range(300))))
        canary = None

        def start_canary() -> None:
            nonlocal canary
            canary = plugbay(
                "upgrade", "acme.calc", "--canary", "20%", "--window", "300", "--json",
                cwd=tmp_path, timeout=120,
            )  # fmt: skip

        starter = threading.Thread(target=start_canary)
        starter.start()
        # calls begin once the canary serves
        with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as client:
            for _ in range(600):
                r = client.get("/api/v1/plugins/acme.calc/canary")
                if r.status_code == 200 and r.json()["state"] == "running":
                    break
                threading.Event().wait(0.05)
        load.start()
        load.join()
        starter.join()
        assert canary is not None and canary.returncode == 1, canary
        decided = json.loads(canary.stdout)
        assert decided["state"] == "rolled-back" and decided["figures"]["new"]["errors"] >= 1
        same_shape(decided, documented()["canary"], "canary")
        failures = answers.count(None)
        assert len(answers) == 300 and failures <= decided["figures"]["new"]["errors"]
        assert _calls(host, range(10)) == [a + 1 for a in range(10)]  # 1.0.0 serves

        # bisect: a shell check that asks the running host, no person in the loop
        script = tmp_path / "check.py"
        script.write_text(
            "import sys\nfrom plugbay.web.client import connect\n"
            "with connect('.plugbay') as c:\n"
            "    ids = [p['id'] for p in c.plugins() if p['state'] == 'active']\n"
            "    sys.exit(1 if 'acme.other' in ids else 0)\n"
        )
        found = plugbay(
            "bisect", "--check", f"{sys.executable} check.py", cwd=tmp_path, timeout=120
        )
        assert found.returncode == 0, found.stdout + found.stderr
        assert "acme.other: the check passes" in found.stdout
        assert "check 1: all 2 plugins active" in found.stdout
        assert "the host is as it was" in found.stdout
        nothing = plugbay("bisect", "--call", "acme.calc add a=1 b=1", "--expect", "2", "--json",
                          cwd=tmp_path, timeout=120)  # fmt: skip
        assert nothing.returncode == 1, nothing.stderr  # the check passes: no culprit
        same_shape(json.loads(nothing.stdout), documented()["bisect"], "bisect")
        listed = json.loads(plugbay("list", "--json", cwd=tmp_path).stdout)
        assert {r["id"]: r["state"] for r in listed} == {
            "acme.calc": "active",
            "acme.other": "active",
        }
