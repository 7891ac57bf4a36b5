"""Versions and ranges: node-semver's and packaging's own test cases, properties, errors."""

from __future__ import annotations

import copy
import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

from plugbay.api.errors import RangeError, VersionError
from plugbay.model.versions import ANY, Range, Version, parse_range, parse_version
from tests.data.versions import node_semver, packaging_specifiers

FAST = settings(max_examples=200, deadline=None)


# ------------------------------------------------------------------ node-semver's fixtures


@pytest.mark.parametrize(("text", "version", "include_prerelease"), node_semver.INCLUDE)
def test_node_semver_range_include(text: str, version: str, include_prerelease: bool) -> None:
    r = Range.parse(text)
    assert r.syntax == "npm"
    assert r.contains(version, include_prerelease=include_prerelease)
    assert r.contains(Version.parse(version), include_prerelease=include_prerelease)
    if not include_prerelease:
        assert version in r


@pytest.mark.parametrize(("text", "version", "include_prerelease"), node_semver.EXCLUDE)
def test_node_semver_range_exclude(text: str, version: str, include_prerelease: bool) -> None:
    r = Range.parse(text)
    assert r.syntax == "npm"
    assert not r.contains(version, include_prerelease=include_prerelease)
    if not include_prerelease:
        assert version not in r


@pytest.mark.parametrize(("text", "version"), node_semver.INVALID_VERSIONS)
def test_node_semver_invalid_versions_are_in_no_range(text: str, version: object) -> None:
    r = Range.parse(text)
    assert version not in r
    with pytest.raises(VersionError):
        r.contains(version)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected", "include_prerelease"), node_semver.RANGE_PARSE)
def test_node_semver_range_parse(text: str, expected: str | None, include_prerelease: bool) -> None:
    if expected is None:
        with pytest.raises(RangeError):
            Range.parse(text)
    else:
        assert Range.parse(text).desugared(include_prerelease=include_prerelease) == expected


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


# ------------------------------------------------------------------ node-semver semantics


@pytest.mark.parametrize(
    ("text", "desugared", "with_prereleases"),
    [
        ("^1.2.3", ">=1.2.3 <2.0.0-0", ">=1.2.3 <2.0.0-0"),
        ("^0.2", ">=0.2.0 <0.3.0-0", ">=0.2.0-0 <0.3.0-0"),
        ("^0.0.3", ">=0.0.3 <0.0.4-0", ">=0.0.3-0 <0.0.4-0"),
        ("~1.2.3", ">=1.2.3 <1.3.0-0", ">=1.2.3 <1.3.0-0"),  # tilde never gets -0 below
        ("~1", ">=1.0.0 <2.0.0-0", ">=1.0.0 <2.0.0-0"),
        ("1.x", ">=1.0.0 <2.0.0-0", ">=1.0.0-0 <2.0.0-0"),
        ("X", "*", "*"),
        ("<=1.2", "<1.3.0-0", "<1.3.0-0"),
        (">1", ">=2.0.0", ">=2.0.0-0"),
        ("=1.2.3+build", "1.2.3", "1.2.3"),
        ("1.2.3 - 2.3.4", ">=1.2.3 <=2.3.4", ">=1.2.3-0 <2.3.5-0"),
        ("1.2.3+b - 2", ">=1.2.3 <3.0.0-0", ">=1.2.3 <3.0.0-0"),  # '-0' lands in the build
        ("* || 1.2.3-rc.1", "*||1.2.3-rc.1", "*||1.2.3-rc.1"),
        ("1.2.3 || 1.2.3", "1.2.3", "1.2.3"),
    ],
)
def test_desugaring(text: str, desugared: str, with_prereleases: str) -> None:
    r = Range.parse(text)
    assert r.desugared() == desugared
    assert r.desugared(include_prerelease=True) == with_prereleases


def test_or_means_or_even_beside_a_star() -> None:
    # node-semver collapses '* || x' to '*' and so rejects 1.2.3-rc.1 here; plugbay does not
    assert Range.parse("* || 1.2.3-rc.1").contains("1.2.3-rc.1")
    assert not Range.parse("*").contains("1.2.3-rc.1")


def test_prerelease_needs_a_comparator_of_the_same_release() -> None:
    r = Range.parse(">=1.2.3-beta <2")
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
    assert Range.parse(text).contains(inside)
    assert not Range.parse(text).contains(outside)


def test_build_metadata_is_ignored_by_ranges() -> None:
    assert Range.parse("1.0.0").contains("1.0.0+build.5")
    assert Range.parse("=1.0.0+other").contains("1.0.0")
    assert not Range.parse(">1.0.0").contains("1.0.0+build.5")


@pytest.mark.parametrize(
    "text", ["^=1.2", "v=1.x", "1.2.3*", "**", "~ >1", "==1.x", "v 1.2.3", ">=1.2.3<2", "1 | 2"]
)
def test_forms_node_semver_accepts_by_accident_are_refused(text: str) -> None:
    with pytest.raises(RangeError):
        Range.parse(text)


def test_a_leading_v_in_a_range_is_accepted_as_by_node_semver() -> None:
    assert Range.parse("~v1.2").desugared() == ">=1.2.0 <1.3.0-0"
    assert Range.parse(">=v1.2.3 <=v2").desugared() == ">=1.2.3 <3.0.0-0"
    assert Range.parse("v1.2.3 - v2.0.0").contains("1.5.0")


# ------------------------------------------------------------------ PEP 440


def pep440(text: str) -> Range:
    """Read as PEP 440: a lone clause like '>2.0' is npm unless it ends in a comma."""
    r = Range.parse(text if text.startswith(("~=", "==", "!=")) else f"{text},")
    assert r.syntax == "pep440"
    return r


@pytest.mark.parametrize(
    ("text", "version", "include_prerelease", "expected", "origin"), packaging_specifiers.CASES
)
def test_packaging_specifier_cases(
    text: str, version: str, include_prerelease: bool, expected: bool, origin: str
) -> None:
    assert pep440(text).contains(version, include_prerelease=include_prerelease) is expected


@pytest.mark.parametrize(
    ("text", "syntax"),
    [
        (">=1,<2", "pep440"),
        ("  ~=1.4", "pep440"),
        ("==1.*", "pep440"),
        ("!=1.3", "pep440"),
        ("===1.0.0", "pep440"),
        (">=1.2", "npm"),
        ("<2", "npm"),
        ("=1.2.3", "npm"),
        (">1.0,", "pep440"),
    ],
)
def test_syntax_is_chosen_by_comma_or_leading_operator(text: str, syntax: str) -> None:
    assert Range.parse(text).syntax == syntax


def test_a_lone_comparator_means_npm() -> None:
    # in npm, '>1.2' is '>=1.3.0' and '<=1.2' is '<1.3.0-0'; end it with ',' for PEP 440
    assert not Range.parse(">1.2").contains("1.2.5")
    assert pep440(">1.2").contains("1.2.5")
    assert Range.parse("<=1.2").contains("1.2.5")
    assert not pep440("<=1.2").contains("1.2.5")


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


# what packaging may see in a specifier
spec_release = st.lists(st.integers(0, 3), min_size=1, max_size=4).map(
    lambda xs: ".".join(map(str, xs))
)
spec_suffix = st.sampled_from(["", "", "", "a1", "b0", "rc2", "rc1", ".post1", ".dev0", "a1.dev2"])


@st.composite
def clauses(draw: st.DrawFn) -> str:
    op = draw(st.sampled_from(["==", "!=", ">=", "<=", ">", "<", "~=", "===", "==*", "!=*"]))
    release = draw(spec_release)
    if op in ("==*", "!=*"):
        return f"{op[:2]}{release}.*"
    if op == "===":
        return f"==={draw(st.sampled_from([release, f'{release}.0', '1.0.0-rc.1', '2.0.0+b']))}"
    if op == "~=" and "." not in release:
        release += ".0"
    local = draw(st.sampled_from(["", "", "+b", "+b.5"])) if op in ("==", "!=") else ""
    return f"{op}{release}{draw(spec_suffix)}{local}"


spec_sets = st.lists(clauses(), min_size=1, max_size=3).map(lambda cs: ",".join(cs) + ",")


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


@FAST
@given(spec_sets, pep_versions(), st.booleans())
def test_pep440_agrees_with_packaging(spec: str, version: Version, include: bool) -> None:
    expected = SpecifierSet(spec).contains(str(version), prereleases=include or None)
    assert Range.parse(spec).contains(version, include_prerelease=include) is expected


@FAST
@given(spec_sets, st.sampled_from(["snapshot", "pre", "dev", "post", "alpha.beta", "rc.1.2"]))
def test_pep440_never_contains_unrepresentable_prereleases(spec: str, pre: str) -> None:
    assert not Range.parse(spec).contains(f"1.0.0-{pre}", include_prerelease=True)


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
        assert not Range.parse(f"={v.major}.{v.minor}.{v.patch}").contains(v)


@FAST
@given(st.integers(1, 4), st.integers(0, 3), st.integers(0, 3), versions, st.booleans())
def test_caret_is_its_desugaring(
    major: int, minor: int, patch: int, v: Version, include: bool
) -> None:
    caret = Range.parse(f"^{major}.{minor}.{patch}")
    plain = Range.parse(f">={major}.{minor}.{patch} <{major + 1}.0.0-0")
    assert caret.contains(v, include_prerelease=include) == plain.contains(
        v, include_prerelease=include
    )


# a small npm grammar, to build ranges the properties below combine
part = st.one_of(st.integers(0, 3).map(str), st.sampled_from(["x", "*"]))


@st.composite
def partials(draw: st.DrawFn) -> str:
    parts = draw(st.lists(part, min_size=1, max_size=3))
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
    ra, rb = Range.parse(a), Range.parse(b)
    either = ra.contains(v, include_prerelease=include) or rb.contains(
        v, include_prerelease=include
    )
    assert Range.parse(f"{a} || {b}").contains(v, include_prerelease=include) == either


@FAST
@given(plain_sets, plain_sets, versions, st.booleans())
def test_and_contains_what_both_sides_do(a: str, b: str, v: Version, include: bool) -> None:
    ra, rb, both = Range.parse(a), Range.parse(b), Range.parse(f"{a} {b}")
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
        for m in re.finditer(r"\d+\.\d+\.\d+-[0-9A-Za-z.-]+", Range.parse(f"{a} {b}").desugared())
    }
    return v.release in named


@FAST
@given(npm_ranges, versions, st.booleans())
def test_contains_agrees_with_the_desugared_comparators(
    text: str, v: Version, include: bool
) -> None:
    # the precompiled intervals must mean exactly node-semver's testSet over the comparators
    desugared = Range.parse(text).desugared(include_prerelease=include)
    expected = any(_test_set(s.split(" "), v, include) for s in desugared.split("||"))
    assert Range.parse(text).contains(v, include_prerelease=include) == expected


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
    r = Range.parse(text)
    members = [v for v in vs if r.contains(v, include_prerelease=include)]
    assert r.max_satisfying(vs, include_prerelease=include) == (max(members) if members else None)


@FAST
@given(npm_ranges)
def test_equal_ranges_hash_alike_and_whitespace_does_not_matter(text: str) -> None:
    spaced = text.replace(" ", "  ").replace("||", " || ")
    for op in ("<=", ">=", "~>", "^"):
        spaced = spaced.replace(op, op + " ")
    assert Range.parse(spaced) == Range.parse(text)
    assert hash(Range.parse(spaced)) == hash(Range.parse(text))
    assert Range.parse(spaced).desugared() == Range.parse(text).desugared()


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
