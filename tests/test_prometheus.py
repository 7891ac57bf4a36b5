"""A real Prometheus scrapes a real host; the shipped rules and dashboard hold up.

Debian's ``prometheus`` package (``make promtool`` installs it) gives both the server
and promtool. The server runs on 127.0.0.1 on a free port with its storage in a
temp dir, scrapes ``plugbay run`` with the host's own token file, evaluates the
shipped rules, and is asked through its HTTP API for plugbay's series, the rules'
results and every query of the Grafana dashboard.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import plugbay.monitor
from tests._running import Running, plugbay_run
from tests._waiting import until_sync
from tests.conftest import PluginFactory

DEPLOY = Path(plugbay.monitor.__file__).parent / "deploy"
RULES = DEPLOY / "prometheus-rules.yml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
RULE_TESTS = Path(__file__).parent / "data" / "prometheus" / "plugbay-rules.test.yml"

WORKER = """
from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b

    @command
    def fail(self) -> int:
        raise ValueError("asked to fail")
"""


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make promtool` installs Debian's prometheus package"
    return path


def until(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` until it gives something truthy; fail naming ``what`` after 60 s."""
    return until_sync(check, what, 60.0, every=0.2)


# --------------------------------------------------------------------------- promtool


def test_the_shipped_rules_pass_promtool_check() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(RULES)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 15 rules found" in done.stdout + done.stderr


def test_the_shipped_rules_pass_their_unit_tests() -> None:
    done = subprocess.run(
        [tool("promtool"), "test", "rules", RULE_TESTS.name],
        capture_output=True, text=True, timeout=120, check=False, cwd=RULE_TESTS.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_is_unit_tested() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), re.M))
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert alerts and alerts == tested


# --------------------------------------------------------------------------- the server


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every target, with Grafana's variables filled in."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    out = []
    for panel in panels:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "30s").replace("$plugin", ".*")
            assert "$" not in expr, expr
            out.append((panel["title"], expr))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def prometheus(tmp: Path, host: Running) -> Iterator[httpx.Client]:
    """Debian's prometheus server scraping ``host`` every second with its token file,
    evaluating the shipped rules; stopped (by its pid) at the end."""
    target = host.url.removeprefix("http://").rstrip("/")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        "scrape_configs:\n  - job_name: plugbay\n    metrics_path: /metrics\n"
        "    authorization:\n      type: Bearer\n"
        f"      credentials_file: {host.state / 'api-token'}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    checked = subprocess.run(
        [tool("promtool"), "check", "config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the port is free when asked for; should another process take it before Prometheus
    # binds it, Prometheus says so and exits, and it is started again on another
    for attempt in range(3):
        port = free_port()
        log = tmp / f"prometheus-{attempt}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [tool("prometheus"), f"--config.file={config}",
                 f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def started(proc: subprocess.Popen[bytes] = proc, client: httpx.Client = client) -> str:
            if proc.poll() is not None:
                return "exited"
            try:
                return "ready" if client.get("/-/ready").status_code == 200 else ""
            except httpx.TransportError:
                return ""

        if until(started, "prometheus to start") == "ready":
            break
        client.close()
        if "address already in use" not in log.read_text() or attempt == 2:
            pytest.fail(f"prometheus exited: {log.read_text()}")
    try:
        yield client
    finally:
        client.close()
        proc.terminate()  # the one process this test started, by its pid
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def query(client: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/query", params={"query": expr}).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_host_and_the_dashboard_has_data(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins(
        "acme.worker", WORKER,
        extra='isolation = "process"\n[resources]\nmemory = "512MiB"\nopen-files = 256\n',
    )  # fmt: skip
    plugins("acme.quiet")
    with plugbay_run(tmp_path) as host, prometheus(tmp_path, host) as prom:
        exposition = httpx.get(f"{host.url}/metrics", headers=host.auth, timeout=10).text
        with httpx.Client(base_url=host.url, headers=host.auth, timeout=30) as api:

            def call(command: str, body: dict[str, Any], plugin: str = "acme.worker") -> int:
                url = f"/api/v1/plugins/{plugin}/commands/{command}"
                return api.post(url, json=body).status_code

            def traffic() -> None:
                for i in range(5):
                    assert call("add", {"a": i}) == 200
                assert call("fail", {}) == 502
                assert call("ping", {}, "acme.quiet") == 200

            # the target is up: Prometheus got in with the host's token
            def target_up() -> bool:
                targets = prom.get("/api/v1/targets").json()["data"]["activeTargets"]
                return any(t["health"] == "up" for t in targets)

            until(target_up, "the plugbay target to be up")
            assert [r["value"][1] for r in query(prom, 'up{job="plugbay"}')] == ["1"]
            # calls keep coming while Prometheus scrapes, so rates have two samples
            until(
                lambda: traffic() or query(prom, "plugbay:plugin_calls:rate5m > 0"),
                "the recorded call rate",
            )
            plugins_seen = {r["metric"]["plugin"] for r in query(prom, "plugbay_plugin_info")}
            assert {"acme.worker", "acme.quiet"} <= plugins_seen
            up = {r["metric"]["plugin"]: r["value"][1] for r in query(prom, "plugbay_plugin_up")}
            assert up["acme.worker"] == up["acme.quiet"] == "1"
            errors = query(prom, 'plugbay_call_errors_total{plugin="acme.worker"}')
            assert errors and errors[0]["metric"]["command"] == "fail"
            # the rules run on real data: one call in six fails
            wanted = 'plugbay:plugin_error_ratio:rate5m{plugin="acme.worker"} > 0'
            ratio = until(lambda: traffic() or query(prom, wanted), "the recorded error ratio")
            assert 0 < float(ratio[0]["value"][1]) < 1
            # a plugin that is called and never fails has a ratio of 0, not none
            ratio_of_quiet = 'plugbay:plugin_error_ratio:rate5m{plugin="acme.quiet"}'
            quiet = until(lambda: traffic() or query(prom, ratio_of_quiet), "the quiet ratio")
            assert [r["value"][1] for r in quiet] == ["0"]
            until(
                lambda: query(prom, 'plugbay_plugin_memory_bytes{plugin="acme.worker"}'),
                "the worker's memory",
            )
            # every dashboard query is valid PromQL and, but for alerts, has data
            for title, expr in dashboard_queries():
                if "alert_firing" in expr:
                    assert query(prom, expr) == [], title  # nothing is firing
                    continue
                until(lambda expr=expr: traffic() or query(prom, expr), f"data for '{title}'")
        assert host.proc.poll() is None
    # every series name the dashboard and rules use is one the host exports
    families = set(re.findall(r"^# TYPE (\S+) (\w+)", exposition, re.M))
    names = {n for n, _ in families}
    exported = set(names)
    for name, kind in families:
        if kind == "counter":
            exported.add(name + "_total")
        if kind == "histogram":
            exported |= {name + "_bucket", name + "_sum", name + "_count"}
    used = set(re.findall(r"\bplugbay_[a-z_]+\b", DASHBOARD.read_text() + RULES.read_text()))
    assert used and used <= exported, used - exported
    recorded = set(re.findall(r"record: (\S+)", RULES.read_text()))
    assert set(re.findall(r"\bplugbay:[a-z0-9_:]+", RULES.read_text())) <= recorded


def test_the_docs_find_the_shipped_files(tmp_path: Path) -> None:
    import sys

    page = (Path(__file__).parents[1] / "docs" / "monitoring-with-prometheus.md").read_text()
    command = re.search(r"```sh\n(python -c .+)\n```", page)
    assert command is not None
    done = subprocess.run(
        command.group(1).replace("python", sys.executable, 1),
        shell=True, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    shown = Path(done.stdout.strip())
    assert shown == DEPLOY
    for name in ("prometheus-rules.yml", "grafana-dashboard.json", "prometheus.yml"):
        assert (shown / name).is_file() and f"`{name}`" in page
    # the example configuration is one Prometheus accepts, with a token file in place
    example = (shown / "prometheus.yml").read_text()
    assert "credentials_file: /srv/app/.plugbay/api-token" in example
    (tmp_path / "api-token").write_text("t0ken\n")
    shutil.copy(shown / "prometheus-rules.yml", tmp_path)
    config = tmp_path / "prometheus.yml"
    config.write_text(example.replace("/srv/app/.plugbay/api-token", str(tmp_path / "api-token")))
    checked = subprocess.run(
        [tool("promtool"), "check", "config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 15 rules found" in checked.stdout + checked.stderr
