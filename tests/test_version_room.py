"""Ranges with no room are called empty, saying why: PEP 440 sets whose ``===`` text no
version in the other clauses has, and npm comparators with no version between them
(``>1.0.0 <1.0.1-0``); and a range with room is never called empty."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

from plugbay.model.versions import Version
from tests.test_versions import _GRID, clauses, npm, pep440, versions

# texts an '===' clause may name: versions (as packaging spells them or not), other case
# and text that is no PEP 440 version at all
ARBITRARY = ["1.0", "1.0.0", "2", "1.0.0-rc.1", "1.0RC1", "v1.0", "1.0+b", "foo", "FOO", "1.0-"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            "===foo,>=1",
            "'===foo' admits only the text 'foo', which is not a PEP 440 version, and '>=1' "
            "admits only versions",
        ),
        (
            "===foo,!=1,<3",
            "'===foo' admits only the text 'foo', which is not a PEP 440 version, and '!=1' "
            "and '<3' admit only versions",
        ),
        ("===1.0,>=2", "'===1.0' is the one version it admits, and '>=2' leaves it out"),
        ("===1.0,<=1", None),  # 1.0 is <=1
        ("===foo", None),  # the text 'foo' itself
        ("===FOO,===foo", None),  # '===' compares text without case
        ("===1.0.0-rc.1,<2", None),  # the text 1.0.0-rc.1, a pre-release of 1.0.0
    ],
)
def test_an_arbitrary_text_no_other_clause_admits_is_empty(text: str, why: str | None) -> None:
    """'===foo,>=1' was said to hold versions (none of those found satisfying it)."""
    assert pep440(text).is_empty is (why is not None)
    assert pep440(text).why_empty == why


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ARBITRARY), st.lists(clauses(), max_size=2))
def test_a_set_with_arbitrary_equality_is_empty_exactly_when_its_text_is_not_in_it(
    text: str, others: list[str]
) -> None:
    """'===' admits one text, so whether that text is in the set decides (packaging)."""
    spec = ",".join([f"==={text}", *others])
    assert pep440(spec).is_empty is not SpecifierSet(spec).contains(text, prereleases=True)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(ARBITRARY), st.lists(clauses(), max_size=2))
def test_a_set_with_arbitrary_equality_some_version_is_in_is_never_called_empty(
    text: str, others: list[str]
) -> None:
    spec = ",".join([*others, f"==={text}"])
    s = SpecifierSet(spec)
    holder = next((v for v in [*_GRID, text] if s.contains(v, prereleases=True)), None)
    if holder is not None:
        assert not pep440(spec).is_empty, f"{spec} holds {holder}"


# ------------------------------------------------------------------ npm


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            ">1.0.0 <1.0.1-0",
            "'>1.0.0' and '<1.0.1-0' leave no version between them: the least version above "
            "1.0.0 is 1.0.1-0",
        ),
        (
            ">1.0.0-rc <1.0.0-rc.0",
            "'>1.0.0-rc' and '<1.0.0-rc.0' leave no version between them: the least version "
            "above 1.0.0-rc is 1.0.0-rc.0",
        ),
        (
            "<1.0.1-0   >1.0.0 || >=2 <1",
            "each of its alternatives is empty: in '<1.0.1-0 >1.0.0', '>1.0.0' and '<1.0.1-0' "
            "leave no version between them: the least version above 1.0.0 is 1.0.1-0; in "
            "'>=2 <1', '>=2' (from 2.0.0) is above '<1' (below 1.0.0)",
        ),
        (">1.0.0 <1.0.1", None),  # 1.0.1-0
        (">1.0.0 <1.0.1-alpha", None),  # 1.0.1-0
        (">1.0.0-rc <1.0.0-rc.0.0", None),  # 1.0.0-rc.0
        (">=1.0.0 <1.0.1-0", None),  # 1.0.0
    ],
)
def test_npm_comparators_with_no_version_between_them_are_empty(text: str, why: str | None) -> None:
    """'>1.0.0 <1.0.1-0' was said to hold versions: 1.0.1-0 is the least above 1.0.0."""
    assert npm(text).is_empty is (why is not None)
    assert npm(text).why_empty == why


def least_above(v: Version) -> Version:
    """The least version above ``v`` in SemVer precedence (build metadata aside)."""
    if v.prerelease:
        return Version(v.major, v.minor, v.patch, (*v.prerelease, 0))
    return Version(v.major, v.minor, v.patch + 1, (0,))


@settings(max_examples=150, deadline=None)
@given(versions, versions)
def test_two_strict_npm_bounds_are_empty_exactly_when_nothing_lies_between(
    a: Version, b: Version
) -> None:
    assert npm(f">{a} <{b}").is_empty is (b.compare_precedence(least_above(a)) <= 0)
    assert npm(f">{a} <{least_above(a)}").why_empty is not None


# node-semver itself, as npm bundles it, decides the same ranges
_CORES = ["1.0.0", "1.0.1", "1.1.0"]
_PRES = ["", "-0", "-0.0", "-alpha", "-rc", "-rc.0", "-rc.0.0", "-rc.1"]
_GRID_NPM = [Version.parse(c + p) for c in _CORES for p in _PRES]


def _node_semver() -> Path | None:
    npm_cli = shutil.which("npm")
    if shutil.which("node") is None or npm_cli is None:
        return None
    root = subprocess.run([npm_cli, "root", "-g"], capture_output=True, text=True, timeout=60)
    for place in (
        Path(root.stdout.strip()) / "npm/node_modules/semver",
        Path(root.stdout.strip()) / "semver",
    ):
        if (place / "package.json").is_file():
            return place
    return None


@pytest.mark.skipif(_node_semver() is None, reason="node and node-semver are absent")
def test_node_semver_finds_a_version_exactly_in_the_strict_pairs_called_not_empty() -> None:
    """Every ``>a <b`` over a grid: node-semver (includePrerelease) finds a version in it
    among the grid and each bound's least successor exactly when plugbay says it is not
    empty (the least version above ``a`` is in it whenever any version is)."""
    ranges = [f">{a} <{b}" for a in _GRID_NPM for b in _GRID_NPM]
    candidates = sorted({str(v) for v in _GRID_NPM} | {str(least_above(v)) for v in _GRID_NPM})
    script = (
        "const semver = require(process.argv[1]);"
        "const [rs, vs] = JSON.parse(process.argv[2]);"
        "console.log(JSON.stringify(rs.map(r =>"
        " vs.some(v => semver.satisfies(v, r, {includePrerelease: true})))))"
    )
    out = subprocess.run(
        ["node", "-e", script, str(_node_semver()), json.dumps([ranges, candidates])],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for text, held in zip(ranges, json.loads(out), strict=True):
        assert npm(text).is_empty is not held, text
