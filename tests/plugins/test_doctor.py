"""The DOCTOR plugin through the host and the CLI (the engine: test_doctor_engine.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from plugbay.runtime.host import Host
from tests.plugins.conftest import BUNDLED


async def test_the_plugin_answers_in_sentence_case_through_the_formatter(bundled: Host) -> None:
    assert (
        await bundled.call("extension.processor", "respond", text="Men are all alike.")
        == "In what way"
    )
    assert await bundled.call(
        "extension.processor", "respond", text="I am unhappy", session="b"
    ) == ("I am sorry to hear you are unhappy")
    assert (
        await bundled.call("extension.processor", "greet")
        == "How do you do. Please tell me your problem"
    )
    calls = bundled.info("utility.formatters")["metrics"]["commands"]["sentence_case"]["calls"]
    assert calls == 3


def test_a_conversation_carries_over_between_plugbay_calls(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}

    def say(text: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "plugbay.cli", "call", "extension.processor", "respond",
             f"text={text}", "--plugins", str(BUNDLED), "--state", str(tmp_path / "state")],
            capture_output=True, text=True, timeout=60, env=env, check=True,
        )  # fmt: skip
        return result.stdout.strip()

    assert say("Men are all alike.") == "In what way"
    assert say("Men are all alike.") == "What resemblance do you see"
