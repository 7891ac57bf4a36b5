"""Versions and ranges: node-semver's and packaging's own cases, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version as PyVersion

from plugbay.errors import RangeError, VersionError
from plugbay.versions import ANY, Range, Version
from tests.data.node_semver_ranges import EXCLUDE, INCLUDE


@pytest.mark.parametrize(("text", "version", "include_prerelease"), INCLUDE)
def test_node_semver_range_include(text: str, version: str, include_prerelease: bool) -> None:
    assert Range.parse(text).contains(version, include_prerelease=include_prerelease)


@pytest.mark.parametrize(("text", "version", "include_prerelease"), EXCLUDE)
def test_node_semver_range_exclude(text: str, version: str, include_prerelease: bool) -> None:
    assert not Range.parse(text).contains(version, include_prerelease=include_prerelease)


def test_semver_spec_precedence_example() -> None:
    # SemVer 2.0.0, section 11
    texts = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
        "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1",
    ]  # fmt: skip
    assert sorted(Version.parse(t) for t in reversed(texts)) == [Version.parse(t) for t in texts]


def test_build_metadata_is_ignored_for_precedence_but_kept() -> None:
    a, b = Version.parse("1.0.0+a"), Version.parse("1.0.0+b")
    assert a.compare_precedence(b) == 0
    assert a != b
    assert str(a) == "1.0.0+a"
    assert Range.parse("1.0.0").contains(a)


@pytest.mark.parametrize(
    "text", ["1.2", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "v1.0.0", "1.0.0.0", "", " "]
)
def test_invalid_versions_are_explained(text: str) -> None:
    with pytest.raises(VersionError) as err:
        Version.parse(text)
    assert str(err.value).startswith(f"'{text}' is not a SemVer 2.0.0 version")
    assert "write MAJOR.MINOR.PATCH" in str(err.value)


@pytest.mark.parametrize("text", [">>1", "^^1", "abc", "1.2.3.4.5", "~=1", "1 - ", "=>1"])
def test_invalid_ranges_are_explained(text: str) -> None:
    with pytest.raises(RangeError) as err:
        Range.parse(text)
    assert f"'{text}' is not a valid" in str(err.value)
    assert "use npm syntax such as '^1.2.3'" in str(err.value)
    assert "or a PEP 440 specifier set such as '>=1,<2'" in str(err.value)


# ------------------------------------------------------------------ PEP 440

PEP440 = [
    # (specifier, version, expected) — cases in the spirit of packaging's test_specifiers
    (">=1,<2", "1.0.0", True),
    (">=1,<2", "2.0.0", False),
    ("~=1.4", "1.4.0", True),
    ("~=1.4", "1.9.9", True),
    ("~=1.4", "2.0.0", False),
    ("~=1.4.2", "1.4.9", True),
    ("~=1.4.2", "1.5.0", False),
    ("==1.*", "1.9.0", True),
    ("==1.*", "2.0.0", False),
    ("!=1.3", "1.3.0", False),
    ("!=1.3", "1.3.1", True),
    ("==1.3.0", "1.3.0", True),
    (">=1.0,!=1.5.0", "1.5.0", False),
    (">=1.0,<2.0", "1.0.0-rc.1", False),
    (">=1.0rc1", "1.0.0-rc.2", True),
    (">=1.0.0a1,<2", "1.0.0-alpha.2", True),
    (">=1.0,<2.0", "2.0.0-beta.1", False),
]


@pytest.mark.parametrize(("text", "version", "expected"), PEP440)
def test_pep440_specifiers(text: str, version: str, expected: bool) -> None:
    r = Range.parse(text)
    assert r.syntax == "pep440"
    assert r.contains(version) is expected


def test_a_lone_comparator_is_read_as_npm() -> None:
    assert Range.parse(">=1.2").syntax == "npm"
    assert not Range.parse("<2.0").contains("2.0.0-beta.1")


def test_prerelease_tags_without_a_pep440_form_are_never_contained() -> None:
    assert not Range.parse(">=1,<3").contains("2.0.0-snapshot.1", include_prerelease=True)


semver_core = st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4))
pep_pre = st.one_of(
    st.just(()),
    st.tuples(st.sampled_from(["alpha", "beta", "rc", "a", "b"]), st.integers(0, 3)),
)
representable = st.builds(lambda core, pre: Version(*core, pre), semver_core, pep_pre)
clause = st.builds(
    lambda op, core: f"{op}{'.'.join(map(str, core))}",
    st.sampled_from(["==", "!=", ">=", "<=", ">", "<", "~="]),
    st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)),
)
# what plugbay reads as PEP 440: a comma, or a leading ==, != or ~= (a lone '>=1.2' is npm)
spec_sets = st.one_of(
    st.lists(clause, min_size=2, max_size=3).map(",".join),
    clause.filter(lambda c: c.startswith(("==", "!=", "~="))),
)


def _pep_text(v: Version) -> str:
    text = f"{v.major}.{v.minor}.{v.patch}"
    if v.prerelease:
        tag = {"alpha": "a", "beta": "b", "rc": "rc", "a": "a", "b": "b"}[str(v.prerelease[0])]
        text += f"{tag}{v.prerelease[1]}"
    return text


@settings(max_examples=300, deadline=None)
@given(spec_sets, representable, st.booleans())
def test_pep440_agrees_with_packaging(spec: str, version: Version, pre: bool) -> None:
    expected = SpecifierSet(spec).contains(PyVersion(_pep_text(version)), prereleases=pre or None)
    assert Range.parse(spec).contains(version, include_prerelease=pre) is expected


# ------------------------------------------------------------------ properties

identifiers = st.one_of(st.integers(0, 20), st.sampled_from(["alpha", "beta", "rc", "x-1", "0a"]))
versions = st.builds(
    Version,
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(0, 5),
    st.lists(identifiers, max_size=3).map(tuple),
    st.lists(st.sampled_from(["b1", "001", "sha-9"]), max_size=2).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(versions, versions, versions)
def test_order_is_total_and_consistent(a: Version, b: Version, c: Version) -> None:
    assert (a < b) + (a == b) + (a > b) == 1
    assert (a == b) == (hash(a) == hash(b)) or a != b
    if a <= b and b <= c:
        assert a <= c
    assert Version.parse(str(a)) == a


@settings(max_examples=300, deadline=None)
@given(versions)
def test_prerelease_sorts_before_its_release(v: Version) -> None:
    release = Version(v.major, v.minor, v.patch)
    if v.prerelease:
        assert v.compare_precedence(release) < 0
    assert Version(v.major, v.minor, v.patch, v.prerelease).compare_precedence(v) == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.integers(0, 5), st.integers(0, 5), versions)
def test_caret_is_its_desugaring(major: int, minor: int, patch: int, v: Version) -> None:
    caret = Range.parse(f"^{major}.{minor}.{patch}")
    plain = Range.parse(f">={major}.{minor}.{patch} <{major + 1}.0.0-0")
    assert caret.contains(v) == plain.contains(v)


npm_ranges = st.sampled_from(
    ["^1.2.3", "~1.2", "1.x", "*", ">=1.2 <2", "1.2 - 2.3", "<1", ">2.1", "=1.0.0", "0.x", "^0.1"]
)


@settings(max_examples=300, deadline=None)
@given(npm_ranges, npm_ranges, versions)
def test_or_and_and_combine_like_logic(a: str, b: str, v: Version) -> None:
    ra, rb = Range.parse(a), Range.parse(b)
    assert Range.parse(f"{a} || {b}").contains(v) == (ra.contains(v) or rb.contains(v))
    if " - " not in a and " - " not in b:
        assert Range.parse(f"{a} {b}").contains(v) == (ra.contains(v) and rb.contains(v))


@settings(max_examples=200, deadline=None)
@given(npm_ranges, st.lists(versions, max_size=8))
def test_max_satisfying_is_the_largest_member(text: str, vs: list[Version]) -> None:
    r = Range.parse(text)
    members = [v for v in vs if r.contains(v)]
    assert r.max_satisfying(vs) == (max(members) if members else None)


def test_any_contains_every_release() -> None:
    assert ANY.contains("0.0.0") and ANY.contains("99.1.2")
    assert not ANY.contains("1.0.0-rc.1")
