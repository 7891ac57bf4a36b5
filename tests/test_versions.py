"""Versions and ranges: node-semver's and packaging's own test cases, properties, errors."""

from __future__ import annotations

import copy
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion
from packaging.version import Version as PyVersion

from plugbay.api.errors import RangeError, VersionError
from plugbay.model.range_spelling import ambiguity
from plugbay.model.versions import ANY, Range, Version, parse_range, parse_version, range_syntax
from tests.data.versions import node_semver, packaging_specifiers

FAST = settings(max_examples=200, deadline=None)


# ------------------------------------------------------------------ node-semver's fixtures


@pytest.mark.parametrize(("text", "version", "include_prerelease"), node_semver.INCLUDE)
def test_node_semver_range_include(text: str, version: str, include_prerelease: bool) -> None:
    r = Range.parse(text, "npm")
    assert r.contains(version, include_prerelease=include_prerelease)
    assert r.contains(Version.parse(version), include_prerelease=include_prerelease)
    if not include_prerelease:
        assert version in r


@pytest.mark.parametrize(("text", "version", "include_prerelease"), node_semver.EXCLUDE)
def test_node_semver_range_exclude(text: str, version: str, include_prerelease: bool) -> None:
    r = Range.parse(text, "npm")
    assert not r.contains(version, include_prerelease=include_prerelease)
    if not include_prerelease:
        assert version not in r


@pytest.mark.parametrize(("text", "version"), node_semver.INVALID_VERSIONS)
def test_node_semver_invalid_versions_are_in_no_range(text: str, version: object) -> None:
    r = Range.parse(text, "npm")
    assert version not in r
    with pytest.raises(VersionError):
        r.contains(version)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected", "include_prerelease"), node_semver.RANGE_PARSE)
def test_node_semver_range_parse(text: str, expected: str | None, include_prerelease: bool) -> None:
    if expected is None:
        with pytest.raises(RangeError):
            Range.parse(text, "npm")
    else:
        r = Range.parse(text, "npm")
        assert r.desugared(include_prerelease=include_prerelease) == expected


@pytest.mark.parametrize(("greater", "lesser"), node_semver.COMPARISONS)
def test_node_semver_comparisons(greater: str, lesser: str) -> None:
    a, b = Version.parse(greater), Version.parse(lesser)
    assert a > b and a >= b and b < a and b <= a and a != b
    assert a.compare_precedence(b) == 1 and b.compare_precedence(a) == -1


@pytest.mark.parametrize(("left", "right"), node_semver.EQUALITY)
def test_node_semver_equality_is_precedence(left: str, right: str) -> None:
    a, b = Version.parse(left), Version.parse(right)
    assert a.compare_precedence(b) == 0
    assert a != b  # they differ in build metadata, which breaks the tie
    assert Range.parse(left).contains(b) and Range.parse(right).contains(a)


@pytest.mark.parametrize(
    ("text", "major", "minor", "patch", "prerelease", "build"), node_semver.VALID
)
def test_node_semver_valid_versions(
    text: str,
    major: int,
    minor: int,
    patch: int,
    prerelease: tuple[int | str, ...],
    build: tuple[str, ...],
) -> None:
    v = Version.parse(text)
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == (
        major, minor, patch, prerelease, build
    )  # fmt: skip
    assert str(v) == text
    assert v == Version(major, minor, patch, prerelease, build)


def test_node_semver_invalid_versions() -> None:
    # invalid-versions.js: junk, and things that are not text
    for junk in ["hello, world", "xyz"]:
        with pytest.raises(VersionError):
            Version.parse(junk)
    for not_text in [
        re.compile("1.2.3"),
        None,
        123,
        type("T", (), {"__str__": lambda s: "1.2.3"})(),
    ]:
        with pytest.raises(VersionError, match="a version is text"):
            Version.parse(not_text)


def test_node_semver_length_limits_do_not_apply() -> None:
    # node-semver refuses > 256 characters and numbers > 2**53 - 1; SemVer has no limit
    # and Python's integers are exact, so these are versions here
    for text in ["1" * 255 + ".0.0", f"{2**53 - 1}0.0.0", f"0.0.{2**53 - 1}0"]:
        assert str(Version.parse(text)) == text
    assert Version.parse(f"{2**64}.0.0") > Version.parse(f"{2**64 - 1}.0.0")


FIXTURES = [(t, v, i, True) for t, v, i in node_semver.INCLUDE] + [
    (t, v, i, False) for t, v, i in node_semver.EXCLUDE
]


@pytest.mark.parametrize(("text", "version", "include_prerelease", "inside"), FIXTURES)
def test_node_semver_fixtures_read_by_the_rule(
    text: str, version: str, include_prerelease: bool, inside: bool
) -> None:
    # Read without a syntax, a fixture keeps node-semver's answer unless it is one
    # comparator PEP 440 also accepts; where that reading differs, validate warns.
    r = Range.parse(text)
    if r.syntax == "npm":
        assert r.contains(version, include_prerelease=include_prerelease) is inside
    elif r.contains(version, include_prerelease=include_prerelease) is not inside:
        assert ambiguity(text) is not None, f"{text!r} reads differently but is not warned about"


# ------------------------------------------------------------------ node-semver semantics


def npm(text: str) -> Range:
    return Range.parse(text, "npm")


@pytest.mark.parametrize(
    ("text", "desugared", "with_prereleases"),
    [
        ("^1.2.3", ">=1.2.3 <2.0.0-0", ">=1.2.3 <2.0.0-0"),
        ("^0.2", ">=0.2.0 <0.3.0-0", ">=0.2.0-0 <0.3.0-0"),
        ("^0.0.3", ">=0.0.3 <0.0.4-0", ">=0.0.3 <0.0.4-0"),  # a full version is its bound
        ("~1.2.3", ">=1.2.3 <1.3.0-0", ">=1.2.3 <1.3.0-0"),
        ("~1", ">=1.0.0 <2.0.0-0", ">=1.0.0-0 <2.0.0-0"),  # as '1.x' (node-semver 7.8)
        ("1.x", ">=1.0.0 <2.0.0-0", ">=1.0.0-0 <2.0.0-0"),
        ("X", "*", "*"),
        ("<=1.2", "<1.3.0-0", "<1.3.0-0"),
        (">1", ">=2.0.0", ">=2.0.0-0"),
        ("=1.2.3+build", "1.2.3", "1.2.3"),
        ("1.2.3 - 2.3.4", ">=1.2.3 <=2.3.4", ">=1.2.3-0 <2.3.5-0"),
        ("1.2.3+b - 2", ">=1.2.3 <3.0.0-0", ">=1.2.3-0 <3.0.0-0"),  # build is ignored
        ("1.x+build.5", ">=1.0.0 <2.0.0-0", ">=1.0.0-0 <2.0.0-0"),
        ("* || 1.2.3-rc.1", "*||1.2.3-rc.1", "*||1.2.3-rc.1"),
        ("1.2.3 || 1.2.3", "1.2.3", "1.2.3"),
    ],
)
def test_desugaring(text: str, desugared: str, with_prereleases: str) -> None:
    r = npm(text)
    assert r.desugared() == desugared
    assert r.desugared(include_prerelease=True) == with_prereleases


def test_or_means_or_even_beside_a_star() -> None:
    # node-semver collapses '* || x' to '*' and so rejects 1.2.3-rc.1 here; plugbay does not
    assert npm("* || 1.2.3-rc.1").contains("1.2.3-rc.1")
    assert not npm("*").contains("1.2.3-rc.1")


def test_prerelease_needs_a_comparator_of_the_same_release() -> None:
    r = npm(">=1.2.3-beta <2")
    assert r.contains("1.2.3-rc.1")
    assert not r.contains("1.2.4-rc.1")
    assert r.contains("1.2.4-rc.1", include_prerelease=True)
    assert not ANY.contains("1.0.0-rc.1")
    assert ANY.contains("1.0.0-rc.1", include_prerelease=True)


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        (">=1.2.3 >1.2.3", "1.2.4", "1.2.3"),
        (">1.2.3 >=1.2.3", "1.2.4", "1.2.3"),
        ("<=2.0.0 <2.0.0", "1.9.9", "2.0.0"),
        ("<2.0.0 <=2.0.0", "1.9.9", "2.0.0"),
        ("=1.2.3 <=1.2.3 >=1.2.3", "1.2.3", "1.2.4"),
        ("1.2.3 >1.2.3 || 2.0.0", "2.0.0", "1.2.3"),
    ],
)
def test_the_tighter_of_two_bounds_at_one_version_wins(
    text: str, inside: str, outside: str
) -> None:
    assert npm(text).contains(inside)
    assert not npm(text).contains(outside)


def test_build_metadata_is_ignored_by_ranges() -> None:
    assert npm("1.0.0").contains("1.0.0+build.5")
    assert npm("=1.0.0+other").contains("1.0.0")
    assert not npm(">1.0.0").contains("1.0.0+build.5")


@pytest.mark.parametrize(
    "text",
    [
        "^=1.2",
        "v=1.x",
        "1.2.3*",
        "**",
        "~ >1",
        "==1.x",
        "v 1.2.3",
        ">=1.2.3<2",
        "1 | 2",
        "1.x.5",
        "x.1",
    ],
)
def test_forms_node_semver_accepts_by_accident_are_refused(text: str) -> None:
    with pytest.raises(RangeError):
        npm(text)


def test_a_leading_v_in_a_range_is_accepted_as_by_node_semver() -> None:
    assert npm("~v1.2").desugared() == ">=1.2.0 <1.3.0-0"
    assert npm(">=v1.2.3 <=v2").desugared() == ">=1.2.3 <3.0.0-0"
    assert npm("v1.2.3 - v2.0.0").contains("1.5.0")


# ------------------------------------------------------------------ PEP 440


def pep440(text: str) -> Range:
    r = Range.parse(text, "pep440")
    assert r.syntax == "pep440"
    return r


@pytest.mark.parametrize(
    ("text", "version", "include_prerelease", "expected", "origin"), packaging_specifiers.CASES
)
def test_packaging_specifier_cases(
    text: str, version: str, include_prerelease: bool, expected: bool, origin: str
) -> None:
    # packaging (since 26) answers contains(v) for one version with no alternatives: a
    # pre-release counts when nothing final is offered. plugbay's contains(v) answers
    # as SpecifierSet.filter does when a final release matches too (pip's behaviour);
    # the lone-version answer is max_satisfying([v]), which falls back the same way.
    for r in (pep440(text), Range.parse(text)):
        if r.syntax != "pep440":
            continue  # one clause with a '-' pre-release reads as npm unless asked
        v = Version.parse(version)
        if include_prerelease:
            assert r.contains(v, include_prerelease=True) is expected
        else:
            assert (r.max_satisfying([v]) is not None) is expected
            if not v.prerelease or SpecifierSet(text).prereleases:
                assert r.contains(v) is expected


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        # PEP 440-only syntax
        (">=1,<2", "pep440"),
        ("  ~=1.4", "pep440"),
        ("==1.*", "pep440"),
        ("!=1.3", "pep440"),
        ("===1.0.0", "pep440"),
        (">1.0,", "pep440"),
        (">=1.0.0-rc.1, <2", "pep440"),
        # one comparator packaging accepts, no '-': what a Python author means
        (">=1.2", "pep440"),
        ("<2", "pep440"),
        (">1.0", "pep440"),
        ("<= 1.2", "pep440"),
        (">=v1.2", "pep440"),
        (">=1.0.0a1", "pep440"),
        ("<1.0.0rc1", "pep440"),
        (">=2.0.0b1", "pep440"),
        (">=1.0.dev0", "pep440"),
        (">1.0.post1", "pep440"),
        # npm-only syntax
        ("=1.2.3", "npm"),
        ("1.2.3", "npm"),
        ("1.2", "npm"),
        ("^1.2", "npm"),
        ("~1.2", "npm"),
        ("~>1.2", "npm"),
        ("1.x", "npm"),
        (">=1.x", "npm"),
        ("*", "npm"),
        ("", "npm"),
        ("1.2 - 2", "npm"),
        (">=1.2 <2", "npm"),
        ("<1 || >=2", "npm"),
        (">=1.2.3+build", "npm"),
        # a SemVer pre-release after '-' is SemVer spelling: npm
        (">=1.0.0-rc.1", "npm"),
        ("<2.0.0-0", "npm"),
    ],
)
def test_the_syntax_rule(text: str, syntax: str) -> None:
    assert range_syntax(text) == syntax
    assert Range.parse(text).syntax == syntax


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["<", ">", "<=", ">=", ">==", "<>"]),
    st.sampled_from(["", " ", "  ", "\t"]),
    st.sampled_from(["1", "1.2", "0.1.0", "1.0a1", "1.0.post1", "1.x", "1.2+b"]),
    st.sampled_from(["", " ", " <2", " <=2.0.0", "  >1", " || >3", "\t<2", " 2", " ,<2"]),
)
def test_a_single_comparator_is_pep440_exactly_when_packaging_reads_it(
    op: str, gap: str, version: str, tail: str
) -> None:
    # range_syntax answers "npm" for two comparators without asking packaging (so a
    # start whose manifests use npm ranges never imports it): the same answer
    from packaging.specifiers import InvalidSpecifier, Specifier

    text = f"{op}{gap}{version}{tail}"
    stripped = text.strip()
    if "," in stripped or "-" in stripped:
        return  # the comma and '-' rules come first (test_the_syntax_rule)
    try:
        Specifier(stripped)
        expected = "pep440"
    except InvalidSpecifier:
        expected = "npm"
    assert range_syntax(text) == expected


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        (">=1.0.0a1", ["1.0.0-a.1", "1.0.0-alpha.2", "1.0.0-rc.1", "1.0.0", "2.0.0-beta.1"], ["1.0.0-a.0", "0.9.9"]),
        ("<1.0.0rc1", ["0.9.0", "1.0.0-beta.3", "1.0.0-rc.0"], ["1.0.0-rc.1", "1.0.0"]),
        (">=2.0.0b1", ["2.0.0-b.1", "2.0.0-rc.1", "2.0.0", "3.0.0"], ["2.0.0-alpha.9", "1.9.9"]),
        (">1.0", ["1.0.1", "1.1.0"], ["1.0.0", "1.0.0+build.5", "1.0.1-rc.1"]),
        ("<=1.2", ["1.2.0", "1.2.0+b"], ["1.2.1", "1.2.5"]),
        ("<2", ["1.9.9"], ["2.0.0", "1.5.0-rc.1", "2.0.0-rc.1"]),
    ],
)  # fmt: skip
def test_prerelease_specifiers_and_lone_comparators_mean_what_pip_means(
    text: str, inside: list[str], outside: list[str]
) -> None:
    r = Range.parse(text)
    spec = SpecifierSet(text)
    for version in inside:
        assert r.contains(version), version
    for version in outside:
        assert not r.contains(version), version
    for version in inside + outside:
        assert r.contains(version) is spec.contains(
            str(Version.parse(version)), prereleases=bool(spec.prereleases)
        )


def test_npm_reading_is_still_there_when_asked_for() -> None:
    assert not Range.parse(">1.2", "npm").contains("1.2.5")
    assert Range.parse("<=1.2", "npm").contains("1.2.5")
    assert Range.parse(">1.2.x").desugared() == ">=1.3.0"
    assert Range.parse(">1.2", "npm") != Range.parse(">1.2")  # same text, other meaning
    assert pickle.loads(pickle.dumps(Range.parse(">1.2", "npm"))).syntax == "npm"
    with pytest.raises(RangeError, match="'yaml' is not a range syntax"):
        Range.parse(">1", "yaml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.5.0-alpha.1", True),
        ("1.5.0-a.1", True),
        ("1.5.0-alpha1", True),
        ("1.5.0-a", True),
        ("1.5.0-beta", True),
        ("1.5.0-b.2", True),
        ("1.5.0-rc.3", True),
        ("1.5.0-c.3", True),
        ("1.5.0-RC.3", True),
        ("1.5.0-snapshot", False),  # no PEP 440 spelling: never contained
        ("1.5.0-rc.1.2", False),
        ("1.5.0-rc1.2", False),
        ("1.5.0-1", False),  # packaging would read '-1' as a post-release
        ("1.5.0-pre.1", False),
        ("1.5.0-dev", False),
    ],
)
def test_prereleases_with_a_pep440_spelling(version: str, expected: bool) -> None:
    assert Range.parse(">=1,<2").contains(version, include_prerelease=True) is expected


def test_build_metadata_is_a_local_version() -> None:
    assert Range.parse("==1.0.0").contains("1.0.0+build.5")
    assert not Range.parse("!=1.0.0").contains("1.0.0+build.5")
    assert not pep440(">1.0.0").contains("1.0.0+build.5")
    assert Range.parse("==1.0.0+build.5").contains("1.0.0+build.5")
    assert not Range.parse("==1.0.0+build.5").contains("1.0.0+build.6")
    # '-x' is SemVer build metadata but no PEP 440 local version: packaging refuses it too
    assert not Range.parse("==1.0.0").contains("1.0.0+-x")
    assert Range.parse("===1.0.0-rc.1").contains("1.0.0-rc.1", include_prerelease=True)


# what packaging may see in a specifier, in the spellings people write
spec_release = st.lists(st.integers(0, 3), min_size=1, max_size=4).map(
    lambda xs: ".".join(map(str, xs))
)
spec_suffix = st.sampled_from(
    [
        "",
        "",
        "",
        "a1",
        "b0",
        "rc2",
        "rc1",
        "c1",
        "alpha1",
        "-rc.1",
        ".post1",
        "-1",
        ".dev0",
        "a1.dev2",
    ]
)


@st.composite
def clauses(draw: st.DrawFn) -> str:
    op = draw(st.sampled_from(["==", "!=", ">=", "<=", ">", "<", "~=", "===", "==*", "!=*"]))
    release = draw(spec_release)
    space = draw(st.sampled_from(["", "", " "]))
    v = draw(st.sampled_from(["", "", "v"]))
    if op in ("==*", "!=*"):
        return f"{op[:2]}{space}{v}{release}.*"
    if op == "===":
        return f"==={draw(st.sampled_from([release, f'{release}.0', '1.0.0-rc.1', '2.0.0+b']))}"
    if op == "~=" and "." not in release:
        release += ".0"
    local = draw(st.sampled_from(["", "", "+b", "+b.5"])) if op in ("==", "!=") else ""
    return f"{op}{space}{v}{release}{draw(spec_suffix)}{local}"


# one clause alone (the syntax is then decided by the rule), or several with commas
spec_sets = st.lists(clauses(), min_size=1, max_size=3).flatmap(
    lambda cs: st.sampled_from([",".join(cs), ", ".join(cs), ",".join(cs) + ","])
)


@st.composite
def pep_versions(draw: st.DrawFn) -> Version:
    """SemVer versions a PEP 440 version can stand for, in every accepted spelling."""
    core = draw(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)))
    tag = draw(st.sampled_from(["", "alpha", "a", "beta", "b", "rc", "c", "RC", "Alpha"]))
    pre: tuple[int | str, ...] = ()
    if tag:
        n = draw(st.integers(0, 3))
        pre = draw(st.sampled_from([(tag,), (tag, n), (f"{tag}{n}",)]))
    build = draw(st.sampled_from([(), (), ("b",), ("b", "5"), ("B-1",), ("-x",)]))
    return Version(*core, pre, build)


# SemVer pre-releases with no PEP 440 meaning: packaging cannot read them, or reads
# them as something else ('-1' a post-release, '-dev' a dev release, '-pre' an rc)
unspellable = st.builds(
    lambda core, pre: Version(*core, pre),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    st.sampled_from(
        [
            ("snapshot",),
            ("pre", 1),
            ("dev",),
            ("post",),
            (1,),
            (0,),
            ("alpha", "beta"),
            ("rc", 1, 2),
        ]
    ),
)


def packaging_says(spec: str, version: Version, include: bool) -> bool:
    """packaging's answer: pre-releases when asked for, else by the set's own policy
    (allowed when a clause names one), which is what SpecifierSet.filter and pip do
    whenever a final release matches too."""
    s = SpecifierSet(spec)
    return s.contains(str(version), prereleases=True if include else bool(s.prereleases))


@settings(max_examples=600, deadline=None)
@given(spec_sets, pep_versions(), st.booleans())
def test_pep440_agrees_with_packaging(spec: str, version: Version, include: bool) -> None:
    expected = packaging_says(spec, version, include)
    assert pep440(spec).contains(version, include_prerelease=include) is expected
    if range_syntax(spec) == "pep440":
        assert Range.parse(spec).contains(version, include_prerelease=include) is expected
    else:  # one clause with a SemVer pre-release after '-': npm by the rule
        assert "," not in spec and "-" in spec


@FAST
@given(spec_sets, unspellable, st.booleans())
def test_pep440_never_contains_unspellable_prereleases(
    spec: str, version: Version, include: bool
) -> None:
    assert not pep440(spec).contains(version, include_prerelease=include)


@FAST
@given(spec_sets, st.lists(pep_versions(), max_size=6))
def test_max_satisfying_is_what_packaging_filter_keeps(spec: str, vs: list[Version]) -> None:
    kept = set(SpecifierSet(spec).filter([str(v) for v in vs]))
    members = [v for v in vs if str(v) in kept]
    assert pep440(spec).max_satisfying(vs) == (max(members) if members else None)


# ------------------------------------------------------------------ properties

identifiers = st.one_of(
    st.integers(0, 12), st.sampled_from(["alpha", "beta", "rc", "x-1", "0a", "A", "a"])
)
build_ids = st.sampled_from(["b1", "001", "sha-9", "B"])
versions = st.builds(
    Version,
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.lists(identifiers, max_size=3).map(tuple),
    st.lists(build_ids, max_size=2).map(tuple),
)


@FAST
@given(versions, versions, versions)
def test_order_is_total_and_agrees_with_equality(a: Version, b: Version, c: Version) -> None:
    assert (a < b) + (a == b) + (a > b) == 1
    assert (a <= b) == (a < b or a == b) and (a >= b) == (a > b or a == b)
    if a == b:
        assert hash(a) == hash(b) and str(a) == str(b)
    if a <= b and b <= c:
        assert a <= c
    assert Version.parse(str(a)) == a
    assert parse_version(repr(a)[9:-2]) == a


@FAST
@given(versions, versions)
def test_precedence_ignores_build(a: Version, b: Version) -> None:
    a_b = Version(a.major, a.minor, a.patch, a.prerelease, b.build)
    assert a.compare_precedence(a_b) == 0
    if a.compare_precedence(b) != 0:
        assert (a < b) == (a.compare_precedence(b) < 0)
        assert (a_b < b) == (a < b)


@FAST
@given(versions)
def test_prerelease_sorts_before_its_release(v: Version) -> None:
    release = Version(*v.release)
    assert v.is_prerelease == bool(v.prerelease)
    if v.prerelease:
        assert v.compare_precedence(release) == -1 and v < release
        assert not npm(f"={v.major}.{v.minor}.{v.patch}").contains(v)


@FAST
@given(st.integers(1, 4), st.integers(0, 3), st.integers(0, 3), versions, st.booleans())
def test_caret_is_its_desugaring(
    major: int, minor: int, patch: int, v: Version, include: bool
) -> None:
    caret = npm(f"^{major}.{minor}.{patch}")
    plain = npm(f">={major}.{minor}.{patch} <{major + 1}.0.0-0")
    assert caret.contains(v, include_prerelease=include) == plain.contains(
        v, include_prerelease=include
    )


# a small npm grammar, to build ranges the properties below combine
part = st.one_of(st.integers(0, 3).map(str), st.sampled_from(["x", "*"]))


@st.composite
def partials(draw: st.DrawFn) -> str:
    parts = draw(st.lists(part, min_size=1, max_size=3))
    for i in range(1, len(parts)):  # a wildcard stands for every part after it
        if parts[i - 1] in ("x", "*"):
            parts[i] = parts[i - 1]
    text = ".".join(parts)
    if len(parts) == 3 and draw(st.booleans()):
        text += draw(st.sampled_from(["-0", "-alpha", "-alpha.1", "-beta", "-rc.1"]))
    return text


comparators = st.builds(
    lambda op, v: op + v,
    st.sampled_from(["", "=", "<", "<=", ">", ">=", "~", "~>", "^"]),
    partials(),
)
comparator_sets = st.one_of(
    st.lists(comparators, min_size=1, max_size=3).map(" ".join),
    st.builds(lambda a, b: f"{a} - {b}", partials(), partials()),
)
plain_sets = st.lists(comparators, min_size=1, max_size=3).map(" ".join)
npm_ranges = st.lists(comparator_sets, min_size=1, max_size=3).map(" || ".join)


@FAST
@given(npm_ranges, npm_ranges, versions, st.booleans())
def test_or_contains_what_either_side_does(a: str, b: str, v: Version, include: bool) -> None:
    ra, rb = npm(a), npm(b)
    either = ra.contains(v, include_prerelease=include) or rb.contains(
        v, include_prerelease=include
    )
    assert npm(f"{a} || {b}").contains(v, include_prerelease=include) == either


@FAST
@given(plain_sets, plain_sets, versions, st.booleans())
def test_and_contains_what_both_sides_do(a: str, b: str, v: Version, include: bool) -> None:
    ra, rb, both = npm(a), npm(b), npm(f"{a} {b}")
    together = ra.contains(v, include_prerelease=include) and rb.contains(
        v, include_prerelease=include
    )
    if include or not v.prerelease:
        assert both.contains(v, include_prerelease=include) == together
    else:
        # a pre-release needs a comparator naming its release in the *combined* set,
        # which either side may supply: '>=1.2.3-beta <2' holds 1.2.3-rc, '<2' does not
        assert not together or both.contains(v)
        assert both.contains(v) == (
            ra.contains(v, include_prerelease=True)
            and rb.contains(v, include_prerelease=True)
            and (ra.contains(v) or rb.contains(v) or _names_release(a, b, v))
        )


def _names_release(a: str, b: str, v: Version) -> bool:
    named = {
        Version.parse(m.group(0)).release
        for m in re.finditer(r"\d+\.\d+\.\d+-[0-9A-Za-z.-]+", npm(f"{a} {b}").desugared())
    }
    return v.release in named


@FAST
@given(npm_ranges, versions, st.booleans())
def test_contains_agrees_with_the_desugared_comparators(
    text: str, v: Version, include: bool
) -> None:
    # the precompiled intervals must mean exactly node-semver's testSet over the comparators
    desugared = npm(text).desugared(include_prerelease=include)
    expected = any(_test_set(s.split(" "), v, include) for s in desugared.split("||"))
    assert npm(text).contains(v, include_prerelease=include) == expected


def _test_set(comparators: list[str], v: Version, include: bool) -> bool:
    bounds: list[Version] = []
    for comparator in comparators:
        if comparator == "*":
            continue
        op = re.match(r"[<>=]*", comparator).group(0)  # type: ignore[union-attr]
        bound = Version.parse(comparator[len(op) :])
        c = v.compare_precedence(bound)
        if not {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0, "": c == 0}[op]:
            return False
        bounds.append(bound)
    if v.prerelease and not include:
        return any(b.prerelease and b.release == v.release for b in bounds)
    return True


@FAST
@given(npm_ranges, st.lists(versions, max_size=8), st.booleans())
def test_max_satisfying_is_the_greatest_member(text: str, vs: list[Version], include: bool) -> None:
    r = npm(text)
    members = [v for v in vs if r.contains(v, include_prerelease=include)]
    assert r.max_satisfying(vs, include_prerelease=include) == (max(members) if members else None)


@FAST
@given(npm_ranges)
def test_equal_ranges_hash_alike_and_whitespace_does_not_matter(text: str) -> None:
    spaced = text.replace(" ", "  ").replace("||", " || ")
    for op in ("<=", ">=", "~>", "^"):
        spaced = spaced.replace(op, op + " ")
    assert npm(spaced) == npm(text)
    assert hash(npm(spaced)) == hash(npm(text))
    assert npm(spaced).desugared() == npm(text).desugared()


# ------------------------------------------------------------------ the objects themselves


def test_versions_are_immutable_hashable_and_picklable() -> None:
    v = Version.parse("1.2.3-rc.1+b.5")
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == (1, 2, 3, ("rc", 1), ("b", "5"))
    assert v.release == (1, 2, 3) and v.is_prerelease
    assert repr(v) == "Version('1.2.3-rc.1+b.5')"
    with pytest.raises(AttributeError):
        v.major = 2
    assert pickle.loads(pickle.dumps(v)) == v and copy.deepcopy(v) == v
    assert {v: 1}[Version(1, 2, 3, ("rc", 1), ("b", "5"))] == 1
    assert Version.parse("1.2.3") is Version.parse("1.2.3")  # parses are cached
    assert (v == "1.2.3-rc.1+b.5") is False
    with pytest.raises(TypeError):
        assert v < "2.0.0"  # type: ignore[operator]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((-1,), "-1 is not a non-negative integer"),
        ((1, True), "True is not a non-negative integer"),
        ((1, 0, 0, ("01",)), "'01' is not a pre-release identifier"),
        ((1, 0, 0, ("a.b",)), "'a.b' is not a pre-release identifier"),
        ((1, 0, 0, (), ("",)), "'' is not a build identifier"),
    ],
)
def test_version_constructor_checks_its_parts(args: tuple[object, ...], reason: str) -> None:
    with pytest.raises(VersionError, match=re.escape(reason)):
        Version(*args)  # type: ignore[arg-type]


def test_ranges_keep_their_text_and_compare_by_normalized_text() -> None:
    r = parse_range("  >= 1.2   <2 ")
    assert str(r) == r.text == ">= 1.2   <2"
    assert repr(r) == "Range('>= 1.2   <2')"
    assert r == Range.parse(">=1.2 <2") and r.normalized == ">=1.2 <2"
    assert r != Range.parse(">=1.2.0 <2.0.0-0")  # same meaning, different text
    assert Range.parse(">=1, <2") == Range.parse("<2,>=1")
    assert Range.parse(">=1,<2") != Range.parse(">=1 <2")
    assert Range.parse("^1.2") is Range.parse("^1.2")  # parses are cached
    assert pickle.loads(pickle.dumps(r)) == r
    assert Range.parse(">=1,<2").desugared() == "<2,>=1"
    assert 123 not in r and None not in r
    assert Range.parse("*") == ANY and ANY.contains("0.0.0")


# ------------------------------------------------------------------ what users see


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.2", "'1.2' is not a SemVer 2.0.0 version (at 1.2)."),
        ("v1.2.3", "'v1.2.3' is not a SemVer 2.0.0 version: drop the leading 'v': '1.2.3' (at v1.2.3)."),
        ("01.0.0", "'01.0.0' is not a SemVer 2.0.0 version: numbers may not have leading zeros ('1.0.0') (at 01.0.0)."),
        ("1.0.0-01", "'1.0.0-01' is not a SemVer 2.0.0 version: the numeric pre-release identifier '01' has a leading zero (at 1.0.0-01)."),
        ("1.0.0-", "'1.0.0-' is not a SemVer 2.0.0 version: the pre-release after '-' is empty (at 1.0.0-)."),
        ("1.0.0+", "'1.0.0+' is not a SemVer 2.0.0 version: the build metadata after '+' is empty (at 1.0.0+)."),
        ("1.0.0.0", "'1.0.0.0' is not a SemVer 2.0.0 version: it has 4 numbers, SemVer has three (MAJOR.MINOR.PATCH) (at 1.0.0.0)."),
        ("1.0.0-rc_1", "'1.0.0-rc_1' is not a SemVer 2.0.0 version: identifiers may only use ASCII letters, digits and '-' (at 1.0.0-rc_1)."),
        ("", "'' is not a SemVer 2.0.0 version: it is empty."),
    ],
)  # fmt: skip
def test_bad_versions_are_explained(text: str, message: str) -> None:
    with pytest.raises(VersionError) as err:
        Version.parse(text)
    hint = (
        "write MAJOR.MINOR.PATCH, e.g. '1.2.0'; pre-release and build go after '-' and '+': "
        "'1.2.0-rc.1+build.5'"
    )
    assert str(err.value) == f"{message} {hint}"
    assert err.value.where == text and err.value.hint == hint
    assert err.value.code == "version_invalid"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (">>1", "'>>' is not an operator; use one of <, <=, >, >=, =, ~, ^"),
        ("^^1", "'^^' is not an operator; use one of <, <=, >, >=, =, ~, ^"),
        ("=>1.2", "'=>' is not an operator; did you mean '>='?"),
        ("1.2.3.4.5", "'1.2.3.4.5' has 5 numbers; a version has at most three"),
        ("abc", "'abc' is not a version, a partial version such as '1.2' or '1.x', or one of those after an operator"),
        (">=1.2 <", "'<' has no version after it"),
        ("1.2-rc.1", "'1.2-rc.1' has a pre-release on a partial version; write all three numbers"),
        ("1.2 -", "a hyphen range needs one version on each side of ' - ', e.g. '1.2 - 2.3.4'"),
        ("^01.2", "'^01.2' has a number with a leading zero"),
        ("~=1", "it was read as PEP 440 because it starts with '~=', and '~=1' is not a PEP 440 specifier: '~=' needs at least two numbers, e.g. '~=1.0'"),
        (">=1.2, ^1.4", "it was read as PEP 440 because it contains ',', and '^1.4' is not a PEP 440 specifier: npm syntax cannot be mixed with PEP 440 in one range"),
        ("==1.x", "it was read as PEP 440 because it starts with '==', and '==1.x' is not a PEP 440 specifier"),
        (" , ", "it was read as PEP 440 because it contains ',', but has no specifier in it"),
    ],
)  # fmt: skip
def test_bad_ranges_are_explained(text: str, reason: str) -> None:
    with pytest.raises(RangeError) as err:
        Range.parse(text)
    hint = "write an npm range such as '^1.2.3' or a PEP 440 specifier set such as '>=1.2,<2'"
    stripped = text.strip()
    assert str(err.value) == (
        f"'{stripped}' is not a valid version range: {reason} (at {stripped}). {hint}"
    )
    assert err.value.where == stripped and err.value.hint == hint
    assert err.value.code == "range_invalid"


def test_a_range_must_be_text() -> None:
    with pytest.raises(RangeError, match="a range is text"):
        Range.parse(None)  # type: ignore[arg-type]


@FAST
@given(st.text(alphabet="0123456789.xX*^~<>=| -abv,!", max_size=14))
def test_any_text_either_parses_or_raises_range_error(text: str) -> None:
    error: RangeError | None = None
    try:
        r = Range.parse(text)
    except RangeError as err:
        error = err
    if error is not None:
        assert error.where == text.strip() and error.hint
    else:
        assert r.syntax in ("npm", "pep440")
        r.contains("1.2.3")
        r.desugared(include_prerelease=True)


def test_range_parse_rejects_what_valid_version_text_cannot_mean() -> None:
    for text in [">=1.2.3-", "^1.2.3+", "~1.2.3-01"]:
        with pytest.raises(RangeError):
            Range.parse(text)


# ------------------------------------------------------------------ the docs page

DOCS = Path(__file__).resolve().parents[1] / "docs" / "version-ranges.md"


def test_the_docs_table_is_what_ranges_do() -> None:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in DOCS.read_text().splitlines()
        if line.startswith("| `")
    ]
    assert len(rows) >= 9
    syntaxes = {"npm": "npm", "PEP 440": "pep440"}
    for text, syntax, inside, outside in rows:
        r = Range.parse(text.strip("`"))
        assert r.syntax == syntaxes[syntax], text
        for cell, expected in ((inside, True), (outside, False)):
            for version in re.findall(r"`([^`]+)`", cell):
                assert r.contains(version) is expected, (text, version)


def test_the_docs_warning_example_is_what_validate_says() -> None:
    found = ambiguity(">1.2")
    assert found is not None
    assert f"warning[range] {found.message}\n    fix: {found.hint}" in DOCS.read_text()


# ------------------------------------------------------------------ spellings both syntaxes read

lone_comparators = st.builds(
    lambda op, space, parts, pre: (
        f"{op}{space}{'.'.join(map(str, parts))}{pre if len(parts) == 3 else ''}"
    ),
    st.sampled_from(["<", "<=", ">", ">="]),
    st.sampled_from(["", " "]),
    st.lists(st.integers(0, 3), min_size=1, max_size=3),
    st.sampled_from(["", "", "-rc.1", "-alpha", "-0", "-beta.2"]),
)


def _has_pep440_spelling(v: Version) -> bool:
    try:
        PyVersion(str(v))
    except InvalidVersion:
        return False
    return True


def _readings_agree(a: Range, b: Range, vs: list[Version]) -> bool:
    return all(
        a.contains(v, include_prerelease=inc) == b.contains(v, include_prerelease=inc)
        for v in vs
        for inc in (False, True)
    )


@settings(max_examples=300, deadline=None)
@given(lone_comparators, st.lists(pep_versions(), min_size=1, max_size=25))
def test_validate_warns_exactly_where_the_two_readings_differ(text: str, vs: list[Version]) -> None:
    # versions without a PEP 440 spelling ('+-x' is no local version) are in no PEP 440
    # range, so every range reads them differently; the warning is about the others
    vs = [v for v in vs if _has_pep440_spelling(v)]
    npm_reading, pep_reading = Range.parse(text, "npm"), Range.parse(text, "pep440")
    found = ambiguity(text)
    if found is None:
        # no warning: no version with a PEP 440 spelling tells the readings apart
        assert _readings_agree(npm_reading, pep_reading, vs)
        return
    chosen = Range.parse(text)
    other = pep_reading if chosen.syntax == "npm" else npm_reading
    v, inc = found.version, found.include_prerelease
    assert chosen.contains(v, include_prerelease=inc) is found.contained
    assert other.contains(v, include_prerelease=inc) is not found.contained
    # the spellings offered mean what they say, and draw no warning themselves
    for spelling, meaning in ((found.same, chosen), (found.other, other)):
        if spelling is not None:
            assert ambiguity(spelling) is None, spelling
            assert _readings_agree(Range.parse(spelling), meaning, vs), spelling


# ------------------------------------------------------------------ empty ranges


@pytest.mark.parametrize(
    ("text", "empty"),
    [
        (">=2 <1", True),
        (">1.0.0 <=1.0.0", True),
        ("1.2.3 - 1.0.0", True),
        (">2 <2.0.1", True),  # npm's '>2' is '>=3.0.0'
        ("<0.0.0-0", True),
        (">=2 <1 || ^3", False),  # one alternative holds versions
        (">=1.0.0 <=1.0.0", False),
        ("<1.0.0 >=1.0.0-rc.1", False),  # only pre-releases: still versions
        ("*", False),
        (">=2,<1", True),
        (">1,<=1", True),
        ("==1.*,>=2", True),
        ("~=1.4,<1.4", True),
        ("==1.0,==2.0", True),
        (">=1,<=1", False),
        ("==1.*,<2", False),
        ("~=1.4,<1.4.1", False),
        ("==1.0+b,==1.0", False),  # the local version is in both
        ("<0.0.0", True),  # below 0 only 0's pre-releases, which '<0' leaves out
        ("<0.dev0", True),  # the least version there is
        ("<0.0.0,", True),
        ("==1.0,!=1.0", True),
        (">1,<1.0.0.post0", True),  # '>1' leaves out 1's post- and local releases
        (">1,<1.0.0.post1", True),
        (">=1,<2,!=1.*", True),
        ("==1.0+abc,!=1.0+abc", True),
        ("===1.0,===2.0", True),
        ("===1.0,<1", True),
        ("<0a0", False),  # 0.dev0 is below it
        ("<0.0.1", False),
        (">1.0rc1,<1.0rc2", False),  # 1.0rc2.dev0
        ("==1.*,!=1.0", False),
        ("!=0.*,<1.1", False),  # 1: '!=0.*' admits again from 1.dev0
        (">1.0,<1.0.1", False),  # 1.0.0.1
        ("===1.0,<=1", False),
        ("===1.0", False),
        ("==1.0,!=1.0+abc", False),  # 1.0 itself
        (">1.0.post0.dev0,<1.0.post0", True),  # '<1.0.post0' leaves out 1.0's pre-releases
        (">1.0.post0.dev0,<1.0.post0.dev2", False),  # 1.0.post0.dev1
    ],
)
def test_a_range_that_holds_no_version_is_empty(text: str, empty: bool) -> None:
    assert Range.parse(text).is_empty is empty


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (">=2,<1", "'>=2' and '<1' leave no version between them"),
        (
            "<0.0.0",
            "below 0.0.0 there are only 0.0.0's own pre-releases, which '<0.0.0' leaves out "
            "(the least version is 0.dev0)",
        ),
        ("<0.dev0", "no version is below 0.dev0, the least version there is"),
        ("==1.0,!=1.0", "no version is in '==1.0' and '!=1.0' at once"),
        (">1,<1.0.0.post0", "no version is in '>1' and '<1.0.0.post0' at once"),
        (
            "===1.0,===2.0",
            "'===1.0' and '===2.0' name different versions, and a version has one text",
        ),
        ("===1.0,<1", "'===1.0' is the one version it admits, and '<1' leaves it out"),
        (">=2 <1", "'>=2' (from 2.0.0) is above '<1' (below 1.0.0)"),
        (">=1,<2", None),
    ],
)
def test_an_empty_range_says_why_in_its_own_clauses(text: str, why: str | None) -> None:
    assert Range.parse(text).why_empty == why


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (">=2.0.0 <1.0.0", "'>=2.0.0' is above '<1.0.0'"),
        (">=2 <1", "'>=2' (from 2.0.0) is above '<1' (below 1.0.0)"),
        (">1.0.0 <=1.0.0", "'>1.0.0' is above '<=1.0.0'"),
        ("^2 <1", "'^2' (from 2.0.0) is above '<1' (below 1.0.0)"),
        ("1.x >=2", "'>=2' (from 2.0.0) is above '1.x' (below 2.0.0)"),
        ("<1.0.0   >=2.0.0", "'>=2.0.0' is above '<1.0.0'"),  # as written, spaces aside
        (">3 <=3", "'>3' (from 4.0.0) is above '<=3' (below 4.0.0)"),  # npm's '>3' is >=4
        ("~1.2 >=1.3", "'>=1.3' (from 1.3.0) is above '~1.2' (below 1.3.0)"),
        ("1.0.0 2.0.0", "'2.0.0' is above '1.0.0'"),
        ("2.0.0 - 1.0.0", "'2.0.0 - 1.0.0' starts above where it ends"),
        (
            ">*",
            "'>*' admits no version: npm reads it as '<0.0.0-0', and 0.0.0-0 is the least "
            "version there is",
        ),
        (
            ">=2 <1 || ^3 <=2",
            "each of its alternatives is empty: in '>=2 <1', '>=2' (from 2.0.0) is above "
            "'<1' (below 1.0.0); in '^3 <=2', '^3' (from 3.0.0) is above '<=2' (below 3.0.0)",
        ),
        (">=2 <1 || 1.x", None),  # one alternative holds versions
    ],
)
def test_an_empty_npm_range_names_the_comparators_that_cross(text: str, why: str | None) -> None:
    """An npm range said 'its comparators leave no version between them', whichever
    of its comparators crossed."""
    assert npm(text).why_empty == why


@FAST
@given(npm_ranges)
def test_an_empty_npm_range_says_why_in_comparators_it_holds(text: str) -> None:
    rng = npm(text)
    if rng.is_empty:
        why = rng.why_empty
        assert why is not None and "'" in why
        quoted = why.split("'")[1::2]
        words = {w for alt in rng.normalized.split(" || ") for w in (alt, *alt.split(" "))}
        assert {q for q in quoted if not q.startswith("<0.0.0-0")} <= words, why


_RELEASES = ("0", "0.0.1", "0.1", "0.2", "1", "1.0.0.1", "1.0.1", "1.1", "1.2", "2", "2.0.1", "3")
_GRID = [
    PyVersion(f"{rel}{pre}{post}{dev}{local}")
    for rel in _RELEASES
    for pre in ("", "a0", "a1", "b1", "rc0", "rc1", "rc2")
    for post in ("", ".post0", ".post1", ".post2")
    for dev in ("", ".dev0", ".dev1")
    for local in ("", "+0", "+b")
]


@settings(max_examples=60, deadline=None)
@given(spec_sets)
def test_a_range_some_version_is_in_is_never_called_empty(spec: str) -> None:
    s = SpecifierSet(spec)
    holder = next((v for v in _GRID if s.contains(v, prereleases=True)), None)
    if holder is not None:
        assert not pep440(spec).is_empty, f"{spec} holds {holder}"


@FAST
@given(versions, versions)
def test_two_npm_bounds_are_empty_exactly_when_the_lower_is_not_below(
    a: Version, b: Version
) -> None:
    assert npm(f">={a} <{b}").is_empty is not (a.compare_precedence(b) < 0)
    assert npm(f">={a} <={b}").is_empty is (a.compare_precedence(b) > 0)


@FAST
@given(spec_release, spec_release)
def test_two_pep440_bounds_are_empty_exactly_when_the_lower_is_not_below(a: str, b: str) -> None:
    assert pep440(f">={a},<{b}").is_empty is not (PyVersion(a) < PyVersion(b))
    assert pep440(f">{a},<={b}").is_empty is not (PyVersion(a) < PyVersion(b))


@FAST
@given(npm_ranges, versions)
def test_an_empty_npm_range_holds_no_version(text: str, v: Version) -> None:
    if npm(text).is_empty:
        assert not npm(text).contains(v, include_prerelease=True)


@FAST
@given(spec_sets, pep_versions())
def test_an_empty_pep440_range_holds_no_version_packaging_knows(spec: str, v: Version) -> None:
    if pep440(spec).is_empty:
        assert not packaging_says(spec, v, True)
