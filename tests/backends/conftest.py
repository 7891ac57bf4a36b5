"""The backends the conformance suite runs on: one :class:`Case` each.

A new backend joins the suite by adding one ``Case`` to :data:`CASES` (how to put
it in place in a host, and what it cannot do, with the reason): every test in
``tests/backends/`` then runs on it. A member a backend cannot honour is
declared here with its reason and the test checks the documented alternative
instead; nothing is skipped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plugbay.isolation._fake import FakeBackend
from plugbay.isolation.policy import IsolationPolicy
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory


@dataclass(frozen=True)
class Case:
    """One backend, as the conformance tests see it."""

    name: str
    #: Host options that place the test plugin on this backend
    options: dict[str, Any]
    #: puts the backend in place in a host before it starts (None: it is built in)
    install: Callable[[Host], Any] | None = None
    #: why the plugin cannot crash apart from the host (None: it can, and is supervised)
    cannot_crash: str | None = None
    #: why it has no usage figures of its own (None: it has them)
    no_usage: str | None = None
    #: why nothing is ever denied to it (None: it has a sandbox that denies and reports)
    no_sandbox: str | None = None
    #: what the suite set up for this case (e.g. the fake backend, to crash it)
    extra: dict[str, Any] = field(default_factory=dict)
    #: writes the conformance plugin (directory, label, version) when it is not Python
    write: Callable[[Path, str, str], None] | None = None
    #: why a cancelled command runs no handler of its own (None: it sees CancelledError)
    no_unwind: str | None = None


def _inline() -> Case:
    return Case(
        "inline",
        {"inline": ["*"]},
        cannot_crash="an inline plugin shares the host's process: its crash is the host's; "
        "sys.exit() in a command is the plugin's error (PluginCallError), the host serves on",
        no_usage="an inline plugin shares the host's process: the host's figures, marked shared",
        no_sandbox="an inline plugin is trusted by the operator: nothing is denied to it",
    )


def _process() -> Case:
    # the default policy: an untrusted plugin runs in a sandboxed worker process
    return Case("process", {"inline": []})


def _fake() -> Case:
    fake = FakeBackend()

    def install(host: Host) -> None:
        host.manager.backends["inline"] = fake

    # a crash and a denial are the fake's faults, asked for by the test
    return Case("fake", {"inline": ["*"]}, install=install, extra={"fake": fake})


def _ray() -> Case:
    # an untrusted plugin on a node of the session's cluster: a sandboxed worker forked
    # by that node's plugbay agent, its frames relayed to the host
    return Case("ray", {"inline": [], "ray": True})


def _ray_actor() -> Case:
    # a trusted plugin on Ray: a bare actor, its process the plugin's worker
    return Case(
        "ray-actor",
        {"inline": ["*"], "ray": True},
        no_sandbox="a bare Ray actor is only for a plugin the operator trusts: no sandbox",
    )


def _wasm() -> Case:
    from tests import _wasm

    here = Path(__file__).resolve().parents[1] / "wasm_plugins"

    def write(directory: Path, label: str, version: str) -> None:
        source = (here / "conform.c").read_text().replace("{label}", label)
        _wasm.write_plugin(
            directory, "acme.conform", source, (here / "conform.toml").read_text(), version
        )

    # runtime = "wasm" places it on the Wasm backend whatever the policy
    return Case(
        "wasm",
        {"inline": []},
        write=write,
        no_unwind="a Wasm call is interrupted where it runs (an epoch deadline) and its "
        "instance replaced by a fresh one: no handler of the plugin runs",
    )


CASES: dict[str, Callable[[], Case]] = {
    "inline": _inline,
    "process": _process,
    "fake": _fake,
    "wasm": _wasm,
    "ray": _ray,
    "ray-actor": _ray_actor,
}


def ray_policy(address: str, inline: list[str], **ray: Any) -> IsolationPolicy:
    """A policy that places every plugin on the session's Ray cluster."""
    table = {"address": address, "plugins": ["*"], **ray}
    return IsolationPolicy.from_config({"ray": table, "policy": {"inline": inline}})


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    made = CASES[str(request.param)]()
    if made.options.get("ray"):
        cluster = request.getfixturevalue("ray_cluster")
        options = dict(made.options)
        del options["ray"]
        options["policy"] = ray_policy(cluster.address, options.pop("inline"))
        made = dataclasses.replace(made, options=options)
    fake = made.extra.get("fake")
    if isinstance(fake, FakeBackend):
        # the command that crashes a worker crashes the fake's "worker" too; the one a
        # sandbox denies is denied by the fake's "sandbox"
        fake.faults("acme.conform").crash_on.add("die")
        fake.faults("acme.conform").deny_on.add("dial")
    return made


@pytest.fixture
def on_backend(case: Case, tmp_path: Path, plugins: PluginFactory) -> Callable[..., Host]:
    """A host whose plugins run on the case's backend."""

    def make(**kwargs: Any) -> Host:
        options: dict[str, Any] = {
            "state_dir": tmp_path / "state",
            "entry_points": False,
            "init_timeout": 30.0,
            "cleanup_timeout": 1.0,
            "monitor": {"interval": 3600},
            **case.options,
            **kwargs,
        }
        host = Host(plugins.root, **options)
        if case.install is not None:
            case.install(host)
        return host

    return make
