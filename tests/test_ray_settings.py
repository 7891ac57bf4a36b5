"""A mistake in the host config's ``[ray]`` table said as the operator needs it: the key,
the value as written, the line of the file that sets it, and what to write instead
(``isolation.ray_settings``). No cluster: the table is refused as the host reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugbay.api.errors import ConfigError
from plugbay.isolation.policy import IsolationPolicy

CASES = [
    pytest.param(
        'object-store = "lots"',
        "[ray] object-store must be a size, not 'lots'",
        'write object-store = "96MiB"',
        id="object-store-words",
    ),
    pytest.param(
        "object-store = 1.5",
        "[ray] object-store must be a size, not 1.5",
        'write object-store = "96MiB"',
        id="object-store-float",
    ),
    pytest.param(
        "object-store = true",
        "[ray] object-store must be a size, not true",
        'write object-store = "96MiB"',
        id="object-store-bool",
    ),
    pytest.param(
        'num-cpus = "two"',
        "[ray] num-cpus must be a whole number >= 1, not 'two'",
        "write num-cpus = 2",
        id="num-cpus",
    ),
    pytest.param(
        "start-timeout = true",
        "[ray] start-timeout must be a number of seconds > 0, not true",
        "write start-timeout = 60",
        id="start-timeout",
    ),
    pytest.param(
        'plugins = "acme.*"',
        "[ray] plugins must be a list of plugin id patterns, not 'acme.*'",
        'write plugins = ["acme.*"]',
        id="plugins",
    ),
    pytest.param(
        'bare-actors = "yes"',
        "[ray] bare-actors must be true or false, not 'yes'",
        "write bare-actors = true",
        id="bare-actors",
    ),
    pytest.param(
        "listen = 127",
        "[ray] listen must be the host's address (a string), not 127",
        'write listen = "127.0.0.1"',
        id="listen",
    ),
    pytest.param(
        "temp-dir = 5",
        "[ray] temp-dir must be a short path",
        'write temp-dir = "/tmp/pbray"',
        id="temp-dir",
    ),
]


@pytest.mark.parametrize(("line", "message", "hint"), CASES)
def test_a_wrong_ray_value_is_said_with_its_value_line_and_an_example(
    tmp_path: Path, line: str, message: str, hint: str
) -> None:
    config = tmp_path / "plugbay.toml"
    config.write_text(f"[policy]\ninline = []\n\n[ray]  # the cluster\n\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        IsolationPolicy.from_file(config)
    error = caught.value
    assert error.message.startswith(message), error.message
    assert error.where == f"{config}:6"  # the line that sets it
    assert error.hint is not None
    assert error.hint.startswith(hint), error.hint


def test_a_wrong_address_is_said_with_its_line_and_an_example(tmp_path: Path) -> None:
    config = tmp_path / "plugbay.toml"
    config.write_text('[ray]\nplugins = ["acme.*"]\naddress = "nowhere"\n')
    with pytest.raises(ConfigError) as caught:
        IsolationPolicy.from_file(config)
    assert caught.value.message == (
        '[ray] address must be "local", "auto" or "HOST:PORT", not \'nowhere\''
    )
    assert caught.value.where == f"{config}:3"
    assert caught.value.hint == 'write address = "10.0.0.5:6379" under [ray]'


def test_a_table_given_in_code_is_said_without_a_line() -> None:
    with pytest.raises(ConfigError) as caught:
        IsolationPolicy.from_config({"ray": {"num-cpus": 0}})
    assert caught.value.message == "[ray] num-cpus must be a whole number >= 1, not 0"
    assert caught.value.where == "host config"
