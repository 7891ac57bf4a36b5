"""The formatters engine: normalize, wrap, sentence_case, table, truncate."""

from __future__ import annotations

import types
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.plugins.conftest import load_engine


@pytest.fixture(scope="module")
def fmt() -> types.ModuleType:
    module: types.ModuleType = load_engine("utility/formatters", "formatting")
    return module


# -- normalize ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("   \t\n ", ""),
        ("  hello   world  ", "hello world"),
        ("line one\nline two\r\n\tline three", "line one line two line three"),
        ("no\u00a0break\u2003em\u3000ideographic", "no break em ideographic"),
        ("\u201cquoted\u201d and \u2018single\u2019", "\"quoted\" and 'single'"),
        ("\u201elow\u201f \u201alow\u201b", "\"low\" 'low'"),
        ("it\u2019s", "it's"),
        ("cafe\u0301", "caf\u00e9"),  # decomposed é becomes one code point
        ("\u212b", "\u00c5"),  # ANGSTROM SIGN → LATIN CAPITAL A WITH RING (NFC)
    ],
)
def test_normalize(fmt: types.ModuleType, text: str, expected: str) -> None:
    assert fmt.normalize(text) == expected


def test_normalize_keeps_compatibility_characters(fmt: types.ModuleType) -> None:
    # NFC, not NFKC: ligatures and full-width letters are the user's to keep
    assert fmt.normalize("\ufb01ne \uff21") == "\ufb01ne \uff21"


@settings(max_examples=80, deadline=None)
@given(st.text())
def test_normalize_is_idempotent(fmt: types.ModuleType, text: str) -> None:
    once = fmt.normalize(text)
    assert fmt.normalize(once) == once
    assert once == once.strip() and "  " not in once and "\n" not in once
    assert unicodedata.is_normalized("NFC", once)


# -- wrap --------------------------------------------------------------------------------


def test_wrap_breaks_at_the_width(fmt: types.ModuleType) -> None:
    text = "HOW DO YOU DO. PLEASE TELL ME YOUR PROBLEM"
    assert fmt.wrap(text, 20) == "HOW DO YOU DO.\nPLEASE TELL ME YOUR\nPROBLEM"


def test_wrap_defaults_to_72_columns(fmt: types.ModuleType) -> None:
    lines = fmt.wrap("word " * 100).split("\n")
    assert max(len(line) for line in lines) <= 72
    assert len(lines[0]) > 60


def test_wrap_keeps_paragraphs_and_collapses_spaces_inside_them(fmt: types.ModuleType) -> None:
    text = "first   paragraph\nstill first\n\n  \n\nsecond"
    assert fmt.wrap(text, 40) == "first paragraph still first\n\nsecond"


def test_wrap_breaks_words_longer_than_a_line(fmt: types.ModuleType) -> None:
    assert fmt.wrap("x" * 25, 10) == "xxxxxxxxxx\nxxxxxxxxxx\nxxxxx"


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n"])
def test_wrap_of_nothing_is_empty(fmt: types.ModuleType, text: str) -> None:
    assert fmt.wrap(text) == ""


def test_wrap_accepts_the_minimum_width(fmt: types.ModuleType) -> None:
    assert fmt.wrap("a b c d e f g h", 10) == "a b c d e\nf g h"


@pytest.mark.parametrize("width", [9, 0, -5])
def test_wrap_rejects_narrow_widths_with_a_clear_message(fmt: types.ModuleType, width: int) -> None:
    with pytest.raises(ValueError, match=f"at least 10 columns, got {width}"):
        fmt.wrap("text", width)


@pytest.mark.parametrize("width", [12.5, "20", True, None])
def test_wrap_rejects_widths_that_are_not_ints(fmt: types.ModuleType, width: object) -> None:
    with pytest.raises(TypeError, match="width must be an int"):
        fmt.wrap("text", width)


@settings(max_examples=80, deadline=None)
@given(text=st.text(), width=st.integers(min_value=10, max_value=120))
def test_wrapped_lines_fit_and_keep_every_word(
    fmt: types.ModuleType, text: str, width: int
) -> None:
    wrapped = fmt.wrap(text, width)
    assert all(len(line) <= width for line in wrapped.split("\n"))
    assert "".join(wrapped.split()) == "".join(text.split())


# -- sentence_case -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("I AM SAD. WHY", "I am sad. Why"),
        (
            "HOW DO YOU DO.  PLEASE TELL ME YOUR PROBLEM",
            "How do you do. Please tell me your problem",
        ),
        ("WHY DO YOU THINK I DON'T ARGUE WITH YOU", "Why do you think I don't argue with you"),
        ("I'M SURE ITS NOT PLEASANT TO BE SAD", "I'm sure its not pleasant to be sad"),
        ("I'VE TOLD YOU BEFORE, I DON'T CARE", "I've told you before, I don't care"),
        ("WHAT? REALLY! YES. NO", "What? Really! Yes. No"),
        ("ARE YOU SAYING 'NO' JUST TO BE NEGATIVE", "Are you saying 'no' just to be negative"),
        ('HE SAID "STOP." THEN LEFT', 'He said "stop." Then left'),
        ("(PARENTHESES.) NEXT", "(Parentheses.) Next"),
        ("VERSION 3.5 IS OUT. 3 CHEERS", "Version 3.5 is out. 3 cheers"),
        ("  LEADING  SPACE\t", "Leading space"),
        ("TWO LINES.\nSECOND ONE\n\nI SAID", "Two lines.\nSecond one\n\nI said"),
        ("'QUOTED START", "'Quoted start"),
        ("THAT IS, I.E.", "That is, i.e."),  # not "I.e."
        ("IT IS MINE", "It is mine"),  # no lone "I" inside words
        ("ÉCOLE. ÜBER ALLES", "École. Über alles"),
    ],
)
def test_sentence_case(fmt: types.ModuleType, text: str, expected: str) -> None:
    assert fmt.sentence_case(text) == expected


def test_sentence_case_reads_elizas_answers(fmt: types.ModuleType) -> None:
    assert (
        fmt.sentence_case("YOU'RE NOT REALLY TALKING ABOUT ME - ARE YOU")
        == "You're not really talking about me - are you"
    )
    assert fmt.sentence_case("OH, I DENY THERE IS A CLIMATE CRISIS") == (
        "Oh, I deny there is a climate crisis"
    )


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii")))
def test_sentence_case_only_changes_case_and_spacing(fmt: types.ModuleType, text: str) -> None:
    cased = fmt.sentence_case(text)
    assert cased.lower().split() == text.lower().split()
    assert cased.count("\n") == text.count("\n")
    assert fmt.sentence_case(cased) == cased


# -- table -------------------------------------------------------------------------------


def test_table_aligns_columns_under_a_header(fmt: types.ModuleType) -> None:
    rows: list[dict[str, object]] = [
        {"name": "ELIZA", "year": 1966},
        {"name": "PARRY", "year": 1972},
        {"name": "A.L.I.C.E.", "year": 1995},
    ]
    assert fmt.table(rows) == (
        "name        year\n----------  ----\nELIZA       1966\nPARRY       1972\nA.L.I.C.E.  1995"
    )


def test_table_header_is_the_union_of_keys_in_first_seen_order(fmt: types.ModuleType) -> None:
    rows: list[dict[str, object]] = [{"b": 1}, {"a": "x", "b": 2}, {"c": None}]
    assert fmt.table(rows).split("\n") == [
        "b  a  c",
        "-  -  -",
        "1",
        "2  x",
        "",
    ]


def test_table_shows_values_as_text(fmt: types.ModuleType) -> None:
    rows: list[dict[str, object]] = [
        {"id": 7, "score": 2.5, "flag": True, "note": "a"},
        {"id": 1234, "score": 10, "flag": False, "note": None},
    ]
    assert fmt.table(rows).split("\n") == [
        "id    score  flag   note",
        "----  -----  -----  ----",
        "7     2.5    True   a",
        "1234  10     False",
    ]


def test_table_keeps_each_row_on_one_line(fmt: types.ModuleType) -> None:
    rows: list[dict[str, object]] = [{"text": "two\nlines\tand  tabs"}]
    assert fmt.table(rows) == "text\n" + "-" * 18 + "\ntwo lines and tabs"


def test_table_measures_wide_characters_in_columns(fmt: types.ModuleType) -> None:
    rows: list[dict[str, object]] = [{"word": "\u6f22\u5b57", "n": 1}, {"word": "ab", "n": 2}]
    assert fmt.table(rows).split("\n") == [
        "word  n",
        "----  -",
        "\u6f22\u5b57  1",
        "ab    2",
    ]


@pytest.mark.parametrize("rows", [[], [{}], [{}, {}]])
def test_table_of_nothing_is_empty(fmt: types.ModuleType, rows: list[dict[str, object]]) -> None:
    assert fmt.table(rows) == ""


# -- truncate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "ellipsis", "expected"),
    [
        ("short", 10, "…", "short"),
        ("exactly10!", 10, "…", "exactly10!"),
        ("hello world", 7, "…", "hello…"),  # no space before the ellipsis
        ("hello world", 8, "...", "hello..."),
        ("abcdefghij", 5, "…", "abcd…"),
        ("abcdefghij", 5, "", "abcde"),
        ("abcdefghij", 1, "…", "…"),  # room for the ellipsis only
        ("abcdefghij", 3, "...", "..."),
        ("abcdefghij", 2, "...", ".."),
        ("abcdefghij", 0, "…", ""),
        ("", 0, "…", ""),
        ("cafe\u0301 noir", 5, "…", "caf…"),  # the accent stays with its letter
    ],
)
def test_truncate(
    fmt: types.ModuleType, text: str, limit: int, ellipsis: str, expected: str
) -> None:
    assert fmt.truncate(text, limit, ellipsis) == expected


def test_truncate_defaults_to_the_ellipsis_character(fmt: types.ModuleType) -> None:
    assert fmt.truncate("a long sentence", 7) == "a long…"


def test_truncate_rejects_a_negative_limit(fmt: types.ModuleType) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        fmt.truncate("text", -1)


@settings(max_examples=80, deadline=None)
@given(text=st.text(), limit=st.integers(min_value=0, max_value=50), ellipsis=st.text(max_size=3))
def test_truncated_text_fits_and_marks_the_cut(
    fmt: types.ModuleType, text: str, limit: int, ellipsis: str
) -> None:
    cut = fmt.truncate(text, limit, ellipsis)
    assert len(cut) <= limit
    if len(text) <= limit:
        assert cut == text
    elif limit > len(ellipsis):
        assert cut.endswith(ellipsis)
