"""SemVer 2.0.0 versions and version ranges in two syntaxes.

* npm (node-semver, strict): ``1.2.3``, ``^1.2``, ``~1.2.3``, ``1.x``, ``*``,
  ``>=1.2 <2``, ``1.2 - 2.3.4``, ``a || b``. Desugared exactly as node-semver's
  ``classes/range.js`` does (``^1.2.3`` is ``>=1.2.3 <2.0.0-0``), with the same
  pre-release rule: a pre-release version matches only a comparator set that
  names a pre-release of the same ``major.minor.patch``, unless
  ``include_prerelease`` is given.
* PEP 440 (``packaging``): chosen when the text has a comma or starts with
  ``~=``, ``==``, ``!=`` or ``===``; ``>=1,<2``, ``~=1.4``, ``==1.*``, ``!=1.3``.
  A SemVer pre-release maps to PEP 440 (``-alpha.1`` → ``a1``, ``-beta`` →
  ``b0``, ``-rc.2`` → ``rc2``); any other pre-release tag has no PEP 440 form and
  is never contained. Build metadata is dropped, as PEP 440 has no equivalent.

A single comparator such as ``>=1.2`` means the same in both and is read as npm.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final, Literal, final

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion
from packaging.version import Version as PyVersion

from plugbay.errors import RangeError, VersionError

__all__ = ["ANY", "Range", "Version", "parse_range", "parse_version"]

_NUM: Final = r"0|[1-9]\d*"
_PRE_ID: Final = rf"(?:{_NUM}|\d*[a-zA-Z-][a-zA-Z0-9-]*)"
_BUILD_ID: Final = r"[0-9A-Za-z-]+"
_SEMVER_RE: Final = re.compile(
    rf"^({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+({_BUILD_ID}(?:\.{_BUILD_ID})*))?$"
)
_VERSION_HINT: Final = (
    "write MAJOR.MINOR.PATCH, e.g. '1.2.0'; pre-release and build go after '-' and '+': "
    "'1.2.0-rc.1+build.5'"
)


@final
class Version:
    """A SemVer 2.0.0 version. Ordered by precedence; ties broken by build metadata
    so that the order is total and consistent with ``==``."""

    __slots__ = ("_key", "build", "major", "minor", "patch", "prerelease")

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...]
    build: tuple[str, ...]

    def __init__(
        self,
        major: int,
        minor: int = 0,
        patch: int = 0,
        prerelease: tuple[int | str, ...] = (),
        build: tuple[str, ...] = (),
    ) -> None:
        self.major, self.minor, self.patch = major, minor, patch
        self.prerelease = tuple(prerelease)
        self.build = tuple(build)
        self._key = (
            major,
            minor,
            patch,
            # a release sorts after all its pre-releases; numeric ids before alphanumeric
            (1,)
            if not self.prerelease
            else (0, *((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)),
            self.build,
        )

    @classmethod
    def parse(cls, text: str) -> Version:
        return _parse_version(text)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def compare_precedence(self, other: Version) -> int:
        a, b = self._key[:4], other._key[:4]
        return (a > b) - (a < b)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Version('{self}')"

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key == other._key

    def __lt__(self, other: Version) -> bool:
        return self._key < other._key

    def __le__(self, other: Version) -> bool:
        return self._key <= other._key

    def __gt__(self, other: Version) -> bool:
        return self._key > other._key

    def __ge__(self, other: Version) -> bool:
        return self._key >= other._key


@functools.lru_cache(maxsize=65536)
def _parse_version(text: str) -> Version:
    m = _SEMVER_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise VersionError(
            f"'{text}' is not a SemVer 2.0.0 version", where=str(text), hint=_VERSION_HINT
        )
    pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()
    build = tuple(m.group(5).split(".")) if m.group(5) else ()
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre, build)


parse_version = _parse_version


# --------------------------------------------------------------------------- npm ranges

_X: Final = r"(?:0|[1-9]\d*|x|X|\*)"
_PARTIAL: Final = (
    rf"v?=?\s*({_X})(?:\.({_X})(?:\.({_X})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?)?)?"
)
_HYPHEN_RE: Final = re.compile(rf"^\s*{_PARTIAL}\s+-\s+{_PARTIAL}\s*$")
_COMPARATOR_RE: Final = re.compile(rf"^(~>?|\^|<=|>=|<|>|=)?\s*{_PARTIAL}$")
_OP_SPACE_RE: Final = re.compile(r"(~>?|\^|<=|>=|<|>|=)\s+")

Op = Literal["<", "<=", ">", ">=", "="]
# (operator, version); a set is a tuple of comparators (AND); the range a tuple of sets (OR)
Comparator = tuple[Op, Version]
_NOTHING: Final[tuple[Comparator, ...]] = (("<", Version(0, 0, 0, (0,))),)


def _is_x(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


def _v(major: int, minor: int = 0, patch: int = 0, pre: tuple[int | str, ...] = ()) -> Version:
    return Version(major, minor, patch, pre)


_ZERO: Final = (0,)


def _pre(text: str | None) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in text.split(".")) if text else ()


def _desugar(
    op: str | None, M: str, m: str | None, p: str | None, pr: str | None, inc: bool
) -> tuple[Comparator, ...]:
    """One npm comparator (maybe ``^``, ``~`` or partial) as plain comparators."""
    z: tuple[int | str, ...] = _ZERO if inc else ()
    if op in ("~", "~>"):
        if _is_x(M):
            return ()
        mj = int(M)
        if _is_x(m):
            return ((">=", _v(mj, 0, 0, z)), ("<", _v(mj + 1, 0, 0, _ZERO)))
        mn = int(m)  # type: ignore[arg-type]
        if _is_x(p):
            return ((">=", _v(mj, mn, 0, z)), ("<", _v(mj, mn + 1, 0, _ZERO)))
        lower = _v(mj, mn, int(p), _pre(pr)) if pr else _v(mj, mn, int(p), z)  # type: ignore[arg-type]
        return ((">=", lower), ("<", _v(mj, mn + 1, 0, _ZERO)))
    if op == "^":
        if _is_x(M):
            return ()
        mj = int(M)
        if _is_x(m):
            return ((">=", _v(mj, 0, 0, z)), ("<", _v(mj + 1, 0, 0, _ZERO)))
        mn = int(m)  # type: ignore[arg-type]
        if _is_x(p):
            upper = _v(0, mn + 1, 0, _ZERO) if mj == 0 else _v(mj + 1, 0, 0, _ZERO)
            return ((">=", _v(mj, mn, 0, z)), ("<", upper))
        pt = int(p)  # type: ignore[arg-type]
        lower = _v(mj, mn, pt, _pre(pr)) if pr else _v(mj, mn, pt, z if mj == 0 else ())
        if mj == 0:
            upper = _v(0, 0, pt + 1, _ZERO) if mn == 0 else _v(0, mn + 1, 0, _ZERO)
        else:
            upper = _v(mj + 1, 0, 0, _ZERO)
        return ((">=", lower), ("<", upper))
    # plain comparator or x-range
    gtlt = op or ""
    xM, xm = _is_x(M), _is_x(M) or _is_x(m)
    any_x = xm or _is_x(p)
    if gtlt == "=" and any_x:
        gtlt = ""
    if xM:
        return _NOTHING if gtlt in (">", "<") else ()
    if gtlt and any_x:
        mj = int(M)
        mn = 0 if xm else int(m)  # type: ignore[arg-type]
        pt = 0
        pre: tuple[int | str, ...] = z
        if gtlt == ">":
            gtlt = ">="
            if xm:
                mj, mn, pt = mj + 1, 0, 0
            else:
                mn, pt = mn + 1, 0
        elif gtlt == "<=":
            gtlt = "<"
            if xm:
                mj += 1
            else:
                mn += 1
        if gtlt == "<":
            pre = _ZERO
        return ((gtlt, _v(mj, mn, pt, pre)),)  # type: ignore[return-value]
    if xm:
        mj = int(M)
        return ((">=", _v(mj, 0, 0, z)), ("<", _v(mj + 1, 0, 0, _ZERO)))
    if _is_x(p):
        mj, mn = int(M), int(m)  # type: ignore[arg-type]
        return ((">=", _v(mj, mn, 0, z)), ("<", _v(mj, mn + 1, 0, _ZERO)))
    version = _v(int(M), int(m), int(p), _pre(pr))  # type: ignore[arg-type]
    return (((gtlt or "="), version),)  # type: ignore[return-value]


def _hyphen(
    f: tuple[str | None, ...], t: tuple[str | None, ...], inc: bool
) -> tuple[Comparator, ...]:
    fM, fm, fp, fpr = f
    tM, tm, tp, tpr = t
    z: tuple[int | str, ...] = _ZERO if inc else ()
    out: list[Comparator] = []
    if not _is_x(fM):
        if _is_x(fm):
            out.append((">=", _v(int(fM), 0, 0, z)))  # type: ignore[arg-type]
        elif _is_x(fp):
            out.append((">=", _v(int(fM), int(fm), 0, z)))  # type: ignore[arg-type]
        else:
            out.append((">=", _v(int(fM), int(fm), int(fp), _pre(fpr) if fpr else z)))  # type: ignore[arg-type]
    if not _is_x(tM):
        if _is_x(tm):
            out.append(("<", _v(int(tM) + 1, 0, 0, _ZERO)))  # type: ignore[arg-type]
        elif _is_x(tp):
            out.append(("<", _v(int(tM), int(tm) + 1, 0, _ZERO)))  # type: ignore[arg-type]
        elif tpr:
            out.append(("<=", _v(int(tM), int(tm), int(tp), _pre(tpr))))  # type: ignore[arg-type]
        elif inc:
            out.append(("<", _v(int(tM), int(tm), int(tp) + 1, _ZERO)))  # type: ignore[arg-type]
        else:
            out.append(("<=", _v(int(tM), int(tm), int(tp))))  # type: ignore[arg-type]
    return tuple(out)


def _parse_npm(text: str, inc: bool) -> tuple[tuple[Comparator, ...], ...] | None:
    sets: list[tuple[Comparator, ...]] = []
    for part in text.split("||"):
        part = " ".join(part.split())
        h = _HYPHEN_RE.match(part)
        if h:
            g = h.groups()
            sets.append(_hyphen(g[0:4], g[4:8], inc))
            continue
        comparators: list[Comparator] = []
        for token in _OP_SPACE_RE.sub(r"\1", part).split():
            m = _COMPARATOR_RE.match(token)
            if m is None:
                return None
            op, major, minor, patch, pre = m.groups()
            comparators.extend(_desugar(op, major, minor, patch, pre, inc))
        if any(c == _NOTHING[0] for c in comparators):
            comparators = list(_NOTHING)
        sets.append(tuple(comparators))
    return tuple(sets)


def _test(op: Op, version: Version, bound: Version) -> bool:
    # precedence ignores build metadata
    c = version.compare_precedence(bound)
    if op == ">=":
        return c >= 0
    if op == "<":
        return c < 0
    if op == ">":
        return c > 0
    if op == "<=":
        return c <= 0
    return c == 0


def _test_set(
    comparators: tuple[Comparator, ...], version: Version, include_prerelease: bool
) -> bool:
    for op, bound in comparators:
        if not _test(op, version, bound):
            return False
    if version.prerelease and not include_prerelease:
        # node-semver: a pre-release only satisfies a set that names a pre-release
        # of the same major.minor.patch
        return any(
            bound.prerelease and bound.release == version.release for _, bound in comparators
        )
    return True


# --------------------------------------------------------------------------- PEP 440

_PEP440_START: Final = ("~=", "==", "!=", "===")
_PRE_TAGS: Final = {"a": "a", "alpha": "a", "b": "b", "beta": "b", "c": "rc", "rc": "rc"}
_TAG_NUM_RE: Final = re.compile(r"^([a-zA-Z]+)(\d*)$")


@functools.lru_cache(maxsize=65536)
def _to_pep440(version: Version) -> PyVersion | None:
    text = f"{version.major}.{version.minor}.{version.patch}"
    pre = version.prerelease
    if pre:
        first = pre[0]
        if not isinstance(first, str):
            return None
        m = _TAG_NUM_RE.match(first)
        if m is None or m.group(1).lower() not in _PRE_TAGS:
            return None
        number: int | None = int(m.group(2)) if m.group(2) else None
        rest = pre[1:]
        if number is None and rest and isinstance(rest[0], int):
            number, rest = rest[0], rest[1:]
        if rest:
            return None
        text += f"{_PRE_TAGS[m.group(1).lower()]}{number or 0}"
    try:
        return PyVersion(text)
    except InvalidVersion:  # pragma: no cover - the text is built to be valid
        return None


# --------------------------------------------------------------------------- Range

_RANGE_HINT: Final = (
    "use npm syntax such as '^1.2.3', '~1.2', '1.x', '>=1.2 <2' or '1.0 - 2.0', "
    "or a PEP 440 specifier set such as '>=1,<2' or '~=1.4'"
)


@final
class Range:
    """A set of acceptable versions (see the module docstring for the syntaxes)."""

    __slots__ = ("_incl", "_sets", "_spec", "syntax", "text")

    syntax: Literal["npm", "pep440"]
    text: str

    def __init__(self, text: str) -> None:
        self.text = " ".join(text.split())
        self._spec: SpecifierSet | None = None
        self._sets: tuple[tuple[Comparator, ...], ...] = ()
        self._incl: tuple[tuple[Comparator, ...], ...] = ()
        stripped = self.text
        if "," in stripped or stripped.startswith(_PEP440_START):
            self.syntax = "pep440"
            try:
                self._spec = SpecifierSet(stripped)
            except InvalidSpecifier as exc:
                raise RangeError(
                    f"'{text}' is not a valid PEP 440 specifier set: {exc}",
                    where=text,
                    hint=_RANGE_HINT,
                ) from None
            return
        self.syntax = "npm"
        sets = _parse_npm(stripped, inc=False)
        incl = _parse_npm(stripped, inc=True)
        if sets is None or incl is None:
            # not npm: a single PEP 440 clause without a comma, such as '>=1.0rc1'
            try:
                self._spec = SpecifierSet(stripped)
            except InvalidSpecifier:
                raise RangeError(
                    f"'{text}' is not a valid version range", where=text, hint=_RANGE_HINT
                ) from None
            self.syntax = "pep440"
            return
        self._sets, self._incl = sets, incl

    @classmethod
    def parse(cls, text: str) -> Range:
        return _parse_range(text)

    def contains(self, version: Version | str, *, include_prerelease: bool = False) -> bool:
        if isinstance(version, str):
            version = _parse_version(version)
        if self._spec is not None:
            converted = _to_pep440(version)
            if converted is None:
                return False
            return self._spec.contains(converted, prereleases=include_prerelease or None)
        sets = self._incl if include_prerelease else self._sets
        return any(_test_set(c, version, include_prerelease) for c in sets)

    def __contains__(self, version: object) -> bool:
        if isinstance(version, (Version, str)):
            return self.contains(version)
        return False

    def max_satisfying(self, versions: Iterable[Version]) -> Version | None:
        best: Version | None = None
        for v in versions:
            if (best is None or v > best) and self.contains(v):
                best = v
        return best

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Range('{self.text}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Range) and (self.syntax, self.text) == (other.syntax, other.text)

    def __hash__(self) -> int:
        return hash((self.syntax, self.text))


@functools.lru_cache(maxsize=65536)
def _parse_range(text: str) -> Range:
    if not isinstance(text, str):
        raise RangeError(f"{text!r} is not a version range", where=repr(text), hint=_RANGE_HINT)
    return Range(text)


parse_range = _parse_range

ANY: Final = Range.parse("*")
