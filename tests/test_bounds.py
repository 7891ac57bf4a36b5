"""Per-plugin bounds (``monitor.bounds``) and the host's reading of a worker's word
(``isolation.identity``): unit tests of the parts the adversarial tests use whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbay import ConfigError, PermissionDenied, PluginCallError, ResourceLimitExceeded
from plugbay.isolation.identity import judge_error, log_fields, security_event
from plugbay.isolation.policy import IsolationPolicy
from plugbay.monitor.bounds import Bounds, Budget, bounded


def test_policy_bounds_have_defaults_and_per_plugin_values() -> None:
    policy = IsolationPolicy.from_config(
        {
            "policy": {
                "bounds": {
                    "log-records-per-second": 100,
                    "plugins": {"acme.chatty": {"log-records-per-second": 2000}},
                }
            }
        }
    )
    assert policy.bounds_for("acme.quiet").log_records_per_second == 100
    assert policy.bounds_for("acme.chatty").log_records_per_second == 2000
    assert policy.bounds_for("acme.chatty").log_fields_bytes == Bounds().log_fields_bytes


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"log-rate": 1}, "has no key 'log-rate'"),
        ({"log-fields-bytes": -1}, "must be a whole number above 0"),
        ({"log-fields-bytes": "big"}, "must be a whole number above 0"),
        ({"plugins": {"acme.x": 3}}, "must be a table"),
    ],
)
def test_a_mistake_in_the_bounds_is_a_config_error(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IsolationPolicy.from_config({"policy": {"bounds": table}})


def test_bounded_keeps_small_values_and_cuts_big_ones_by_key() -> None:
    small = {"rows": 3}
    assert bounded(small, 1024) == (small, False)
    cut, was_cut = bounded({"a": "x" * 10_000, "b": 1}, 1024)
    assert was_cut and len(cut["a"]) < 1024 and "cut" in cut["a"]


def test_reserved_fields_of_a_plugin_are_renamed_and_marked() -> None:
    budget = Budget("acme.x", Bounds())
    fields = log_fields({"security": True, "rows": 3}, budget)
    assert fields == {"plugin.security": True, "rows": 3, "source": "plugin"}


def test_a_security_report_keeps_only_known_keys_and_is_rate_limited() -> None:
    budget = Budget("acme.x", Bounds(security_events_per_second=0.001, security_burst=2))
    event = security_event({"kind": "denied", "plugin": "acme.victim", "x": 1}, budget)
    assert event == {"kind": "denied", "source": "worker"}
    assert security_event({"kind": "denied"}, budget) is not None
    assert security_event({"kind": "denied"}, budget) is None
    assert budget.dropped["security_rate"] == 1


def test_the_drops_are_reported_once_per_window() -> None:
    reports: list[dict[str, int]] = []
    budget = Budget("acme.x", Bounds(report_window=3600), lambda _p, lost: reports.append(lost))
    for _ in range(5):
        budget.drop("log_rate")
    assert reports == [{"log_rate": 1}] and budget.dropped["log_rate"] == 5
    assert budget.flush() == {"log_rate": 4}


def test_a_host_only_error_kind_from_a_worker_is_judged() -> None:
    forged = PermissionDenied(
        "the sandbox denied x", plugin="acme.victim", details={"layer": "broker", "denial": "t"}
    ).to_dict()
    error = judge_error(forged, "acme.attacker", sandboxed=True)
    assert isinstance(error, PluginCallError) and error.plugin == "acme.attacker"
    # a broker denial is the host's only by a refusal's token, good for its own error
    # (``isolation.refusals``): a token under any other key is the plugin's word
    issued = judge_error(forged, "acme.attacker", issued=lambda token: token == "t")
    assert isinstance(issued, PluginCallError)

    sandbox = PermissionDenied(
        "the sandbox denied reading /srv",
        details={"operation": "reading /srv", "permission": "read:/srv", "layer": "landlock"},
    ).to_dict()
    assert isinstance(judge_error(sandbox, "acme.a", sandboxed=True), PermissionDenied)
    # a denial of what it was granted cannot be the sandbox's
    granted = judge_error(sandbox, "acme.a", sandboxed=True, granted=("read:/srv",))
    assert isinstance(granted, PluginCallError)

    limit = ResourceLimitExceeded("hit", details={"limit": "memory", "replace": True}).to_dict()
    assert isinstance(judge_error(limit, "acme.a", sandboxed=True), ResourceLimitExceeded)
    assert isinstance(judge_error(limit, "acme.a", sandboxed=False), PluginCallError)


def test_an_ordinary_error_keeps_its_kind_under_the_senders_name() -> None:
    error = PluginCallError("boom", plugin="acme.victim").to_dict()
    judged = judge_error(error, "acme.attacker")
    assert isinstance(judged, PluginCallError) and judged.plugin == "acme.attacker"


def test_the_docs_give_both_log_bursts_as_the_code_has_them() -> None:
    """`[monitor] log-burst` (2000, the host's log store, every plugin) and `[policy.bounds]
    log-burst` (1000, what a worker sends) are two bounds: the docs named one figure in
    one place and the other in another, with nothing saying how they differ."""
    from plugbay.monitor.config import MonitorSettings

    docs = Path(__file__).resolve().parent.parent / "docs"
    operators = " ".join((docs / "operators.md").read_text().split())
    monitor, bounds = MonitorSettings(), Bounds()
    said = (
        f"`[policy.bounds]` `log-records-per-second` = {bounds.log_records_per_second:g} and "
        f"`log-burst` = {bounds.log_burst:g} bound what a sandboxed worker sends"
    )
    assert said in operators
    assert (
        f"`[monitor]` `log-rate` = {monitor.log_rate:g}, `log-burst` = {monitor.log_burst:g}"
        in operators
    )
    assert (
        f"its burst is the smaller ({min(monitor.log_burst, bounds.log_burst):g} by default)"
        in operators
    )
    security = " ".join((docs / "security.md").read_text().split())
    row = f"| `log-records-per-second`, `log-burst` | {bounds.log_records_per_second:g}, {bounds.log_burst:g} |"
    assert row in security
    assert f"`log-rate`, `log-burst` ({monitor.log_rate:g}, {monitor.log_burst:g}," in security
