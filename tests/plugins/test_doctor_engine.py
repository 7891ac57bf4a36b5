"""The DOCTOR engine: Weizenbaum's 1966 ELIZA with the DOCTOR script of CACM 9(1)."""

from __future__ import annotations

import json
import types
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.plugins.conftest import load_engine

# The sample conversation printed in the paper (CACM 9(1), p. 36-37), with what
# this engine answers. Every line comes out verbatim with the script printed in
# the paper's own appendix: no line needs a different version of the script.
# Two lines depend on details the paper does not describe but the MAD-SLIP source
# found in Weizenbaum's papers does: marked below.
PAPER = [
    ("Men are all alike.", "IN WHAT WAY"),
    (
        "They're always bugging us about something or other.",
        "CAN YOU THINK OF A SPECIFIC EXAMPLE",
    ),
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
    # The paper says only "." and "," delimit; without BUT (a delimiter in the
    # MAD-SLIP source) the answer would run on: "... AGGRESSIVE BUT YOU THINK ...".
    (
        "You are not very aggressive but I think you don't want me to notice that.",
        "WHAT MAKES YOU THINK I AM NOT VERY AGGRESSIVE",
    ),
    ("You don't argue with me.", "WHY DO YOU THINK I DON'T ARGUE WITH YOU"),
    ("You are afraid of me.", "DOES IT PLEASE YOU TO BELIEVE I AM AFRAID OF YOU"),
    (
        "My father is afraid of everybody.",
        "WHAT ELSE COMES TO MIND WHEN YOU THINK OF YOUR FATHER",
    ),
    # No keyword, LIMIT is 4: the oldest MEMORY, queued at line 3. The source picks
    # the MEMORY transformation by HASH("HERE", 2) = 3 (the paper says "randomly").
    (
        "Bullies.",
        "DOES THAT HAVE ANYTHING TO DO WITH THE FACT THAT YOUR BOYFRIEND MADE YOU COME HERE",
    ),
]

# A longer conversation published by Anthony Hay (2022) as the output of his C++
# reproduction of the 1966 ELIZA (github.com/anthay/ELIZA, doc/Eliza_part_3.md),
# made after the MAD-SLIP source and SLIP's HASH were found. An independent
# implementation agreeing on 31 answers exercises keystack order, PRE, links,
# NEWKEY, LIMIT and three HASH-chosen memories.
HAY_2022 = [
    ("hi", "I AM NOT SURE I UNDERSTAND YOU FULLY"),
    ("I was just saying hello.", "WERE YOU REALLY"),
    ("So I'll just jump straight in with my problem.", "YOUR PROBLEM"),
    ("It's something that's on my mind every day.", "WHY DO YOU SAY YOUR MIND EVERY DAY"),
    ("It's very serious. It affects everybody. I think about it a lot.", "REALLY, EVERYBODY"),
    ("Yes. I'm talking about the climate and ecological crisis.", "YOU SEEM QUITE POSITIVE"),
    (
        "Nobody's life will be untouched by the climate crisis.",
        "DOES THAT HAVE ANYTHING TO DO WITH THE FACT THAT YOUR PROBLEM",
    ),
    (
        "I'm not sure what you mean.",
        "IS IT BECAUSE YOU ARE NOT SURE WHAT I MEAN THAT YOU CAME TO ME",
    ),
    (
        "Not really. I'm here because I want a serious conversation with you"
        " about something that matters deeply to me.",
        "WHAT WOULD IT MEAN TO YOU IF YOU GOT A SERIOUS CONVERSATION WITH I"
        " ABOUT SOMETHING THAT MATTERS DEEPLY TO YOU",
    ),
    (
        "It would mean I could believe what Weizenbaum said about you in his book.",
        "WE WERE DISCUSSING YOU - NOT ME",
    ),
    ("ok", "DOES THAT HAVE ANYTHING TO DO WITH THE FACT THAT YOUR MIND EVERY DAY"),
    (
        "No. It's on my mind every day because it's such a huge problem.",
        "ARE YOU SAYING 'NO' JUST TO BE NEGATIVE",
    ),
    (
        "No, I'm trying to explain how I feel about the climate crisis.",
        "YOU ARE BEING A BIT NEGATIVE",
    ),
    ("Do you deny there is a climate crisis?", "OH, I DENY THERE IS A CLIMATE CRISIS"),
    (
        "Wow! I really didn't expect that. Haven't you seen the IPCC reports and heard"
        " scientists and the UN Secretary-General talking about the problem?",
        "YOU SAY YOU REALLY DIDN'T EXPECT THAT",
    ),
    (
        "I didn't because I didn't expect you to voice your own beliefs so strongly."
        " I thought I'd be doing all the talking.",
        "PERHAPS IN YOUR FANTASY WE DIDN'T BECAUSE YOU DIDN'T EXPECT EACH OTHER",
    ),
    (
        "This isn't a fantasy. It's very real. Millions of people will die, are dying,"
        " becuase the world is heating.",
        "DID YOU THINK THEY MIGHT NOT BE DYING",
    ),
    (
        "I know they are dying. Peer-reviewed science says so, like the Lancet Planetary"
        " Health report from 2021 that said 5 million people are dying every year because"
        " of extreme heat.",
        "CAN YOU ELABORATE ON THAT",
    ),
    ("19 of the 20 hottest years ever recorded have occured since the year 2000.", "PLEASE GO ON"),
    (
        "The UN Secretary-General says governments and business leaders are lying to us,"
        " saying one thing but doing another.",
        "WOULD YOU LIKE IT IF THEY WERE NOT LYING TO US",
    ),
    (
        "Absolutely. Their own scientists knew about the problem decades ago, but they"
        " actively hid the truth and spread false information. And they are still doing it.",
        "WHAT IF THEY WERE NOT STILL DOING IT",
    ),
    (
        "That would change everything. Government would be less distorted by the powerful"
        " fossil fuel lobby and could act as if they believed their own speeches.",
        "DO YOU THINK ITS LIKELY THAT THEY BELIEVED THEIR OWN SPEECHES",
    ),
    (
        "Words are cheap. Our Prime Minister said at COP26 it was one minute to midnight."
        " A few months later he has given the goahead for new oil and gas fields."
        " He is a liar.",
        "POSSIBLY THEY ARE CHEAP",
    ),
    (
        "It's easy to say what you think people want to hear when you couldn't care less"
        " if what you are saying is true. If a gentleman's word is his bond, our PM is no"
        " gentleman.",
        "DO YOU WISH THAT WHAT I ARE SAYING IS TRUE",
    ),
    (
        "Well, I wish what I am saying was wrong and there was no climate crisis.",
        "HOW LONG HAVE YOU BEEN SAYING WAS WRONG AND THERE WAS NO CLIMATE CRISIS",
    ),
    (
        "I'm going to have to say goodbye now.",
        "DO YOU BELIEVE IT NORMAL TO BE GOING TO HAVE TO SAY GOODBYE NOW",
    ),
    (
        "I hope I'm not being rude. Thank you for talking to me.",
        "DO YOU SAY YOU HOPE YOU'RE NOT BEING RUDE FOR SOME SPECIAL REASON",
    ),
    (
        "You asked if I thought it was normal to say goodbye and I thought I might have"
        " offended you.",
        "WHAT DO YOU THINK ABOUT YOU THOUGHT IT WAS NORMAL TO SAY GOODBYE AND YOU THOUGHT"
        " YOU MIGHT HAVE OFFENDED I",
    ),
    (
        "I think you made a rhyme out of my sentence!",
        "DOES THAT SUGGEST ANYTHING ELSE WHICH BELONGS TO YOU",
    ),
    (
        "We had a good chat and I'd like you to just let me go now.",
        "YOU'RE NOT REALLY TALKING ABOUT ME - ARE YOU",
    ),
    ("Goodbye.", "LETS DISCUSS FURTHER WHY YOUR SENTENCE"),
]

NONE_REMARKS = [
    "I AM NOT SURE I UNDERSTAND YOU FULLY",
    "PLEASE GO ON",
    "WHAT DOES THAT SUGGEST TO YOU",
    "DO YOU FEEL STRONGLY ABOUT DISCUSSING SUCH THINGS",
]


@pytest.fixture(scope="module")
def doctor() -> types.ModuleType:
    module: types.ModuleType = load_engine("extension/processor", "doctor")
    return module


@pytest.fixture
def eliza(doctor: types.ModuleType) -> Any:
    return doctor.Eliza()


def converse(eliza: Any, lines: list[tuple[str, str]]) -> list[str]:
    return [eliza.respond(said) for said, _ in lines]


# -- the published conversations ------------------------------------------------------


def test_greeting_is_the_scripts_opening_remark(eliza: Any) -> None:
    assert eliza.greeting() == "HOW DO YOU DO.  PLEASE TELL ME YOUR PROBLEM"


def test_reproduces_the_conversation_printed_in_the_1966_paper(eliza: Any) -> None:
    assert converse(eliza, PAPER) == [answer for _, answer in PAPER]


def test_agrees_with_an_independent_reproduction_over_a_long_conversation(eliza: Any) -> None:
    assert converse(eliza, HAY_2022) == [answer for _, answer in HAY_2022]


def test_conversations_are_reproducible(doctor: types.ModuleType) -> None:
    first, second = doctor.Eliza(), doctor.Eliza()
    assert converse(first, HAY_2022) == converse(second, HAY_2022)


def test_memory_choice_follows_slip_hash_as_the_paper_reports_for_always(
    doctor: types.ModuleType,
) -> None:
    # "The word 'always', for example, yields the integer 14." (CACM 9(1), p. 38)
    assert doctor._slip_hash(doctor._last_cell("ALWAYS"), 7) == 14
    # and the cell hashed for a long word is its last six-character cell
    assert doctor._last_cell("INVENTED") == doctor._last_cell("ED")


# -- the mechanism, as a user meets it ---------------------------------------------------


def test_reassembly_rules_are_used_in_turn_and_start_over(eliza: Any) -> None:
    answers = [eliza.respond("Men are all alike.") for _ in range(9)]
    assert answers == [
        "IN WHAT WAY",
        "WHAT RESEMBLANCE DO YOU SEE",
        "WHAT DOES THAT SIMILARITY SUGGEST TO YOU",
        "WHAT OTHER CONNECTIONS DO YOU SEE",
        "WHAT DO YOU SUPPOSE THAT RESEMBLANCE MEANS",
        "WHAT IS THE CONNECTION, DO YOU SUPPOSE",
        "COULD THERE REALLY BE SOME CONNECTION",
        "HOW",
        "IN WHAT WAY",
    ]


def test_each_decomposition_rule_keeps_its_own_turn(eliza: Any) -> None:
    assert eliza.respond("My mother is kind.") == "TELL ME MORE ABOUT YOUR FAMILY"
    assert eliza.respond("My car is red.") == "YOUR CAR IS RED"  # (0 YOUR 0): its first
    assert eliza.respond("My sister is kind.") == "WHO ELSE IN YOUR FAMILY IS KIND"


def test_none_answers_in_turn_when_there_is_no_keyword_and_no_memory(eliza: Any) -> None:
    answers = [eliza.respond("Hmm.") for _ in range(6)]
    assert answers == [*NONE_REMARKS, *NONE_REMARKS[:2]]


def test_memory_is_recalled_once_when_limit_comes_round_to_four(eliza: Any) -> None:
    assert eliza.respond("My car is broken.") == "YOUR CAR IS BROKEN"  # LIMIT 2
    assert eliza.respond("Hmm.") == NONE_REMARKS[0]  # LIMIT 3: not yet
    assert eliza.respond("Hmm.") == "BUT YOUR CAR IS BROKEN"  # LIMIT 4; HASH(BROKEN) = 2
    later = [eliza.respond("Hmm.") for _ in range(4)]  # the queue is empty now
    assert later == NONE_REMARKS[1:] + NONE_REMARKS[:1]


def test_memories_come_back_oldest_first(eliza: Any) -> None:
    eliza.respond("My car is broken.")  # LIMIT 2
    eliza.respond("My job is boring.")  # 3
    assert eliza.respond("Hmm.") == "BUT YOUR CAR IS BROKEN"  # 4
    for _ in range(3):  # 1, 2, 3
        eliza.respond("Hmm.")
    # the last word picks the MEMORY transformation: HASH(BORING, 2) = 0
    assert eliza.respond("Hmm.") == "LETS DISCUSS FURTHER WHY YOUR JOB IS BORING"  # 4 again


def test_a_keyword_with_a_higher_rank_wins(eliza: Any) -> None:
    assert eliza.respond("I dreamed about a computer.") == "DO COMPUTERS WORRY YOU"
    assert eliza.respond("Perhaps my name is Fred.") == "I AM NOT INTERESTED IN NAMES"


def test_the_first_clause_with_a_keyword_is_the_one_answered(eliza: Any) -> None:
    said = "It is raining. I am sad, my dog died."
    assert eliza.respond(said) == "I AM SORRY TO HEAR YOU ARE SAD"


def test_pronouns_are_swapped(eliza: Any) -> None:
    assert eliza.respond("I remember my father") == "DO YOU OFTEN THINK OF YOUR FATHER"


def test_pre_rewrites_the_text_before_following_the_link(eliza: Any) -> None:
    # (YOU'RE = I'M ((0 I'M 0) (PRE (I ARE 3) (=YOU)))) then YOU's (0 I ARE 0)
    assert eliza.respond("You're very patient.") == "WHAT MAKES YOU THINK I AM VERY PATIENT"


def test_newkey_hands_over_to_the_next_keyword(eliza: Any) -> None:
    # LIKE (rank 10) finds no "AM/IS/ARE/WAS ... LIKE" and says NEWKEY: I answers.
    assert eliza.respond("I like cheese.") == "YOU SAY YOU LIKE CHEESE"


def test_dlist_classes_match_a_word_by_tag(eliza: Any) -> None:
    # (0 YOU 0 (/BELIEF) 0 I 0) links to YOU, whose (0 I 0 YOU) answers
    assert eliza.respond("I feel you hate me.") == "WHY DO YOU THINK I HATE YOU"
    assert eliza.respond("I think I am clever.") == "DO YOU REALLY THINK SO"


def test_a_keyword_whose_rules_all_fail_gets_the_programs_own_remark(eliza: Any) -> None:
    # CAN has no catch-all rule; the MAD-SLIP program then prints NOMATCH(LIMIT).
    assert eliza.respond("Can we talk?") == "HMMM"  # LIMIT 2
    assert eliza.respond("Can we talk?") == "GO ON , PLEASE"  # LIMIT 3


def test_alternatives_compare_six_character_cells_like_the_original(eliza: Any) -> None:
    # DEPRESSIVE's first cell DEPRES is a cell of DEPRESSED in (*SAD UNHAPPY DEPRESSED SICK)
    assert eliza.respond("I am depressive.") == "I AM SORRY TO HEAR YOU ARE DEPRESSIVE"


def test_accents_and_curly_apostrophes_are_read_as_the_teletype_would(eliza: Any) -> None:
    assert eliza.respond("Parlez-vous français?") == "I AM SORRY, I SPEAK ONLY ENGLISH"
    assert eliza.respond("I don\u2019t know") == "DON'T YOU REALLY KNOW"


def test_answers_are_in_upper_case(eliza: Any) -> None:
    for answer in converse(eliza, HAY_2022):
        assert answer == answer.upper()


# -- state ------------------------------------------------------------------------------


def test_exported_state_continues_the_conversation_in_a_new_engine(
    doctor: types.ModuleType,
) -> None:
    original = doctor.Eliza()
    converse(original, PAPER[:8])
    state = json.loads(json.dumps(original.export_state()))
    resumed = doctor.Eliza()
    resumed.import_state(state)
    assert resumed.export_state() == original.export_state()
    rest = PAPER[8:]
    assert converse(resumed, rest) == [answer for _, answer in rest]
    assert converse(original, rest) == [answer for _, answer in rest]


def test_exported_state_holds_cycle_positions_and_the_memory_queue(eliza: Any) -> None:
    eliza.respond("Men are all alike.")
    eliza.respond("My car is broken.")
    state = eliza.export_state()
    assert json.loads(json.dumps(state)) == state
    assert state["memories"] == ["BUT YOUR CAR IS BROKEN"]
    assert state["positions"] == {"DIT": [1], "MY": [0, 1]}


def test_a_fresh_engine_exports_and_imports_an_empty_state(doctor: types.ModuleType) -> None:
    fresh = doctor.Eliza()
    used = doctor.Eliza()
    converse(used, PAPER)
    used.import_state(fresh.export_state())
    assert used.export_state() == fresh.export_state()
    assert converse(used, PAPER) == [answer for _, answer in PAPER]


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"unknown": 1, "version": "x"},
        {"limit": 9, "memories": "not a list", "positions": []},
        {"limit": True, "memories": [1, None, "", "  ", {"a": 1}], "positions": {"DIT": "x"}},
        {"positions": {"DIT": [99], "NOSUCHKEY": [1], "NONE": [-1], "MY": [0.5, True, None]}},
        {"positions": {"I": list(range(100)), "YOU": [[1]], "DONT": [1]}},
        {"limit": "4", "memories": None, "positions": None},
    ],
)
def test_import_state_ignores_what_it_cannot_use(eliza: Any, state: dict[str, object]) -> None:
    eliza.import_state(state)
    json.dumps(eliza.export_state())
    assert converse(eliza, PAPER[:2]) == [answer for _, answer in PAPER[:2]]


@pytest.mark.parametrize("state", [None, [], "state", 42, [("limit", 4)]])
def test_import_state_survives_values_that_are_not_objects(eliza: Any, state: Any) -> None:
    eliza.import_state(state)
    assert eliza.respond("Men are all alike.") == "IN WHAT WAY"


def test_import_state_keeps_valid_entries_next_to_invalid_ones(eliza: Any) -> None:
    eliza.import_state(
        {
            "limit": 3,
            "memories": ["BUT YOUR DOG", 7],
            "positions": {"DIT": [8], "ALWAYS": [3, 1], "X": [1]},
        }
    )
    assert eliza.respond("Hmm.") == "BUT YOUR DOG"  # LIMIT 4: the memory
    assert eliza.respond("Men are all alike.") == "IN WHAT WAY"  # DIT has 8 rules: 0-7
    assert eliza.respond("You always do that.") == "REALLY, ALWAYS"  # its 4th rule next


# -- whatever the user types --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        ".",
        ",,,,",
        "?!?!",
        "BUT",
        "but but, but.",
        "NONE MEMORY START DLIST PRE NEWKEY =WHAT",
        "0 1 2 3 (* / =",
        "\x00\x07\t\r\n\x1b[31m",
        "\u00e7a va? \u00fcber na\u00efve \u00df",
        "\u6f22\u5b57 \U0001f600 \u202e\u200b \ufb01ne",
        "x" * 10_000,
        "I " * 5_000,
        "my " * 3_300,
        "remember " * 1_100,
        "you think I " * 900,
        ". " * 5_000,
    ],
)
def test_any_input_gets_a_non_empty_upper_case_answer(eliza: Any, text: str) -> None:
    for _ in range(5):  # through a whole LIMIT cycle
        answer = eliza.respond(text)
        assert isinstance(answer, str) and answer.strip()
        assert answer == answer.upper()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.text(max_size=120), min_size=1, max_size=4))
def test_arbitrary_text_never_raises(doctor: types.ModuleType, lines: list[str]) -> None:
    eliza = doctor.Eliza()
    for line in lines:
        assert eliza.respond(line).strip()
    eliza.import_state(json.loads(json.dumps(eliza.export_state())))


# -- farewells --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "bye",
        "Bye.",
        "GOODBYE!",
        "Good-bye, doctor.",
        "quit",
        "  exit ",
        "bye bye",
        "Bye for now, Eliza!",
        "Goodbye now",
    ],
)
def test_farewells_are_recognised(eliza: Any, text: str) -> None:
    assert eliza.is_farewell(text)


@pytest.mark.parametrize(
    "text",
    ["", "hello", "I want to quit my job", "Why say goodbye?", "byebye", "doctor", "now"],
)
def test_other_text_is_not_a_farewell(eliza: Any, text: str) -> None:
    assert not eliza.is_farewell(text)
