"""The ``plugbay new --lang c`` template as its author first meets its failures: a
command declared in plugin.toml whose branch ``src/plugin.c`` lacks is named with the
fix, not "no such command"; a host refusal its storage passes on (the host-call rate
bound) reaches the caller as the host's ``ResourceLimitExceeded``, in a worker's words,
not as JSON text the plugin "claims"."""

from __future__ import annotations

from pathlib import Path

from plugbay.api.errors import ResourceLimitExceeded
from plugbay.runtime.host import Host
from tests import _wasm
from tests._cli import plugbay

pytestmark = _wasm.needs_toolchain


def test_a_declared_command_the_template_does_not_run_is_named_with_the_fix(
    tmp_path: Path,
) -> None:
    manifest = _wasm.template_manifest() + (
        '\n[commands.lines]\nparams = { text = "str" }\nreturns = "int"\n'
    )
    _wasm.write_plugin(
        tmp_path / "plugins" / "textstats", "acme.textstats", _wasm.template_source(), manifest
    )
    shown = plugbay(
        "call", "--plugins", "plugins", "acme.textstats", "lines", "text=a b", cwd=tmp_path
    )
    text = " ".join((shown.stdout + shown.stderr).split())
    assert shown.returncode != 0, text
    assert (
        "command 'lines' is declared in plugin.toml but src/plugin.c does not run it: "
        "add a branch for it to pb_command and rebuild ('plugbay build')"
    ) in text
    # the template's own commands still answer
    word_count = plugbay(
        "call", "--plugins", "plugins", "acme.textstats", "word_count", "text=a b", cwd=tmp_path
    )
    assert word_count.stdout.strip() == "2", word_count.stdout + word_count.stderr


async def test_a_storage_refusal_over_the_host_call_rate_is_the_hosts(tmp_path: Path) -> None:
    _wasm.write_plugin(
        tmp_path / "plugins" / "textstats",
        "acme.textstats",
        _wasm.template_source(),
        _wasm.template_manifest(),
    )
    config = tmp_path / "plugbay.toml"
    config.write_text(
        '[policy.bounds.plugins."acme.textstats"]\nhost-calls-per-second = 1\n'
        "host-calls-burst = 1\n"
    )
    async with Host(
        tmp_path / "plugins",
        state_dir=tmp_path / "state",
        config_file=config,
        entry_points=False,
        init_timeout=30,
    ) as host:
        refused: list[ResourceLimitExceeded] = []
        for n in range(50):  # the burst of one is spent at once; the refill is 1 a second
            try:
                await host.call("acme.textstats", "remember", key=f"k{n}", value="v")
            except ResourceLimitExceeded as exc:
                refused.append(exc)
                break
        assert refused, "50 host calls at once were all let through a bound of 1 a second"
        error = refused[0]
        assert error.message == "over its bound of 1 host calls a second; the call was refused"
        assert error.hint is not None and '[policy.bounds.plugins."acme.textstats"]' in error.hint
        assert "claims" not in str(error)
        bucket = host.manager.budgets["acme.textstats"].host_calls
        bucket.tokens = bucket.burst  # room again, without waiting for the refill
        assert await host.call("acme.textstats", "recall", key="k0") == "v"  # kept
