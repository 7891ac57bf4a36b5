"""ELIZA's DOCTOR: the engine against the 1966 paper, and the plugin through the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from plugbay.host import Host
from tests.plugins.conftest import BUNDLED, load_engine

# The sample conversation printed in Weizenbaum's CACM paper (1966). The last line
# differs: the paper chose MEMORY transformations "randomly"; this engine takes them
# in turn, so it recalls the same memory with the first transformation instead of the
# fourth ("DOES THAT HAVE ANYTHING TO DO WITH THE FACT THAT YOUR BOYFRIEND ...").
PAPER = [
    ("Men are all alike.", "IN WHAT WAY"),
    ("They're always bugging us about something or other.", "CAN YOU THINK OF A SPECIFIC EXAMPLE"),
    ("Well, my boyfriend made me come here.", "YOUR BOYFRIEND MADE YOU COME HERE"),
    ("He says I'm depressed much of the time.", "I AM SORRY TO HEAR YOU ARE DEPRESSED"),
    ("It's true. I am unhappy.", "DO YOU THINK COMING HERE WILL HELP YOU NOT TO BE UNHAPPY"),
    (
        "I need some help, that much seems certain.",
        "WHAT WOULD IT MEAN TO YOU IF YOU GOT SOME HELP",
    ),
    ("Perhaps I could learn to get along with my mother.", "TELL ME MORE ABOUT YOUR FAMILY"),
    ("My mother takes care of me.", "WHO ELSE IN YOUR FAMILY TAKES CARE OF YOU"),
    ("My father.", "YOUR FATHER"),
    ("You are like my father in some ways.", "WHAT RESEMBLANCE DO YOU SEE"),
    (
        "You are not very aggressive but I think you don't want me to notice that.",
        "WHAT MAKES YOU THINK I AM NOT VERY AGGRESSIVE",
    ),
    ("You don't argue with me.", "WHY DO YOU THINK I DON'T ARGUE WITH YOU"),
    ("You are afraid of me.", "DOES IT PLEASE YOU TO BELIEVE I AM AFRAID OF YOU"),
    ("My father is afraid of everybody.", "WHAT ELSE COMES TO MIND WHEN YOU THINK OF YOUR FATHER"),
    ("Bullies.", "LETS DISCUSS FURTHER WHY YOUR BOYFRIEND MADE YOU COME HERE"),
]


@pytest.fixture
def eliza() -> Any:
    return load_engine("extension/processor", "doctor").Eliza()


def test_the_papers_conversation(eliza: Any) -> None:
    assert eliza.greeting() == "HOW DO YOU DO. PLEASE TELL ME YOUR PROBLEM"
    assert [eliza.respond(said) for said, _ in PAPER] == [answer for _, answer in PAPER]


def test_reassembly_rules_cycle_in_order(eliza: Any) -> None:
    answers = [eliza.respond("I am sad") for _ in range(5)]
    assert answers == [
        "I AM SORRY TO HEAR YOU ARE SAD",
        "DO YOU THINK COMING HERE WILL HELP YOU NOT TO BE SAD",
        "I'M SURE ITS NOT PLEASANT TO BE SAD",
        "CAN YOU EXPLAIN WHAT MADE YOU SAD",
        "I AM SORRY TO HEAR YOU ARE SAD",
    ]


def test_no_keyword_falls_back_to_none_then_memory(eliza: Any) -> None:
    assert eliza.respond("Bananas.") == "I AM NOT SURE I UNDERSTAND YOU FULLY"
    assert eliza.respond("My dog bites.") == "YOUR DOG BITES"
    assert eliza.respond("Bananas.") == "LETS DISCUSS FURTHER WHY YOUR DOG BITES"
    assert eliza.respond("Bananas.") == "PLEASE GO ON"


def test_keyword_rank_and_links(eliza: Any) -> None:
    assert eliza.respond("I think computers are strange") == "DO COMPUTERS WORRY YOU"
    assert eliza.respond("how are you") == "WHY DO YOU ASK"
    assert eliza.respond("I dreamed about flying") == "REALLY, ABOUT FLYING"


def test_state_round_trip_continues_the_conversation(eliza: Any) -> None:
    eliza.respond("I am sad")
    eliza.respond("My cat is ill.")
    again = load_engine("extension/processor", "doctor").Eliza()
    again.import_state(json.loads(json.dumps(eliza.export_state())))
    assert again.respond("I am sad") == eliza.respond("I am sad")
    assert again.respond("Bananas.") == "LETS DISCUSS FURTHER WHY YOUR CAT IS ILL"
    again.import_state({"next": {"x": "bad"}, "memory": 3, "junk": None})


@pytest.mark.parametrize("text", ["", "   ", "!!!", "?,.", "x" * 10_000, "日本語 ñ é", "\x00\x01"])
def test_garbage_never_raises(eliza: Any, text: str) -> None:
    assert isinstance(eliza.respond(text), str)


def test_farewell(eliza: Any) -> None:
    assert eliza.is_farewell("Goodbye.") and not eliza.is_farewell("goodbye cruel world")


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
