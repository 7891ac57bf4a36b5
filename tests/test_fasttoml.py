"""The fast manifest reader returns what tomllib returns, or leaves the text to tomllib."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from plugbay.model._fasttoml import loads
from plugbay.model.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent


def _tomllib(text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "invalid"


def test_every_bundled_manifest_reads_the_same_and_plain_ones_take_the_fast_path() -> None:
    files = sorted(ROOT.glob("plugins/*/*/plugin.toml"))
    assert files
    for file in files:
        text = file.read_text(encoding="utf-8")
        fast = loads(text)
        if "\\" in text:  # escapes (a regular expression in a config schema): tomllib's
            assert fast is None, file
        else:
            assert fast == tomllib.loads(text), file
        assert load_manifest(file).id  # and the manifest itself still loads


def test_what_it_does_not_know_is_left_to_tomllib() -> None:
    for text in [
        'a = "tab\\tescape"',  # escapes
        "a.b = 1",  # dotted keys
        "a = 1\na = 2",  # a key twice (tomllib says where)
        "[t]\n[t]",  # a table twice
        'a = { x = "1", }',  # a trailing comma in an inline table
        'a = {x = "1"}\n[a]\ny = "2"',  # a header adding to an inline table
        "a = 01",  # a leading zero
        "a = 1_000",
        "a = inf",
        'a = """\nmulti\n"""',
        "[[plugins]]\nid = 1",
        "a = 1\r\n",
        "a = [[1], [2]]",
        "a = 1979-05-27",
    ]:
        assert loads(text) is None, text


_keys = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True),
    st.from_regex(r'"[a-z.:@ #-]{0,8}"', fullmatch=True),
)
_strings = st.from_regex(r"[a-zA-Z0-9 .,:;#'^~<>=*@/+-]{0,12}", fullmatch=True)
_scalars = st.one_of(
    _strings.map(lambda s: f'"{s}"'),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(["true", "false", "'lit\"eral'", "[]", '["a", "b"]', '[ "x", ]']),
    st.lists(_strings, max_size=3).map(
        lambda xs: "{" + ", ".join(f'k{i} = "{x}"' for i, x in enumerate(xs)) + "}"
    ),
)
_lines = st.one_of(
    st.tuples(_keys, _scalars, st.sampled_from(["", " # note", "\t"])).map(
        lambda t: f"{t[0]} = {t[1]}{t[2]}"
    ),
    st.from_regex(r"\[[a-z]{1,4}(\.[a-z]{1,4})?\]", fullmatch=True),
    st.sampled_from(["", "# a comment", "   ", "[[x]]", "a.b = 1", "= 1", "a = ", "x = 1 2"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_lines, max_size=12))
def test_any_text_reads_as_tomllib_reads_it_or_falls_back(lines: list[str]) -> None:
    text = "\n".join(lines)
    got = loads(text)
    if got is not None:
        assert got == _tomllib(text), text
