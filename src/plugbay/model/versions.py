"""SemVer 2.0.0 versions and version ranges in two syntaxes.

* **npm** (node-semver 7.8, strict mode): ``1.2.3``, ``=1.2.3``, ``>=1.2 <2``,
  ``^1.2.3``, ``~1.2``, ``1.x``, ``*``, ``1.2 - 2.3.4``, ``a || b``; build metadata
  after any version is ignored (``1.x+build``). Each comparator is
  desugared exactly as node-semver's ``classes/range.js`` does (``replaceCaret``,
  ``replaceTilde``, ``replaceXRange``, ``hyphenReplace``), so ``^1.2.3`` is
  ``>=1.2.3 <2.0.0-0`` and ``~1.2`` is ``>=1.2.0 <1.3.0-0``. The pre-release rule
  is node-semver's too: a version with a pre-release tag satisfies a comparator
  set only if some comparator in that set names a pre-release of the same
  ``major.minor.patch``; ``include_prerelease=True`` is node-semver's
  ``includePrerelease`` option. Two deliberate differences:

  - ``a || b`` always means "a or b". node-semver collapses a whole range to
    ``*`` as soon as one alternative is ``*``, which makes ``* || 1.2.3-rc.1``
    reject ``1.2.3-rc.1``; here it is contained.
  - A version in a range may carry one ``v`` (``~v1.2``), as in node-semver, but
    not the stray prefixes node-semver's regexes happen to swallow (``^=1.2``,
    ``v=v1.x``), nor a ``*`` glued to a version (``1.2.3*``), which it deletes.
    A number after a wildcard (``1.x.5``, ``x.1``) is refused in a plain comparator
    as node-semver refuses it; after ``^`` or ``~`` it is ignored, as there.

* **PEP 440** (delegated to ``packaging.specifiers.SpecifierSet``): ``>=1.2,<2``,
  ``~=1.4``, ``==1.*``, ``>=1.0.0a1``. A version is tested as
  ``SpecifierSet(text).contains(str(version), prereleases=...)`` tests it, with the
  set's own pre-release policy: a pre-release only when a clause names one (or with
  ``include_prerelease``), which is what ``SpecifierSet.filter`` and pip do when a
  final release matches too. (Since packaging 26, ``contains`` alone also admits
  a pre-release, as a lone version has no alternatives; that answer is
  ``max_satisfying([version])``, which falls back to pre-releases as ``filter``
  does.) SemVer build
  metadata becomes a PEP 440 *local* version (``1.2.0+b5`` equals ``==1.2.0`` but
  is not ``>1.2.0``). Only pre-releases with a PEP 440 spelling are tested:
  ``alpha``/``a``, ``beta``/``b``, ``rc``/``c``, optionally numbered as ``rc1`` or
  ``rc.1``; any other pre-release (``-snapshot``, ``-rc.1.2``, ``-1``) is never
  contained: packaging would read ``1.2.0-1`` as the *post*-release ``1.2.0.post1``
  and ``1.2.0-dev`` as ``1.2.0.dev0``, which sort elsewhere than the SemVer
  pre-releases they are.

Which syntax a text is read in (:func:`range_syntax`; docs/version-ranges.md):

1. **PEP 440** when it has PEP 440-only syntax: a comma, or a clause starting with
   ``~=``, ``==``, ``!=`` or ``===``.
2. **PEP 440** when it is one comparator (``<``, ``<=``, ``>``, ``>=``) that
   ``packaging`` accepts and its version has no ``-``: ``>1.0``, ``<2``,
   ``>=1.0.0rc1``. A Python author reads ``>1.0`` as "above 1.0", so 1.0.1 is in it
   (npm's ``>1.0`` is ``>=1.1.0``).
3. **npm** otherwise: ``^``, ``~``, ``=``, a bare version, x-ranges, hyphen ranges,
   ``||``, comparators separated by spaces, or a SemVer pre-release after ``-``
   (``>=1.0.0-rc.1``, ``<2.0.0-0``: packaging would read the last as ``<2.0.0.post0``).

``Range.parse(text, syntax="npm")`` (or ``"pep440"``) reads the text in the given
syntax instead. ``plugbay validate`` warns about a spelling whose two readings
differ and names one that cannot be misread (:mod:`plugbay.model.range_spelling`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Final, Literal, NoReturn, final

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.version import InvalidVersion
from packaging.version import Version as PyVersion

from plugbay.api.errors import RangeError, VersionError

__all__ = ["ANY", "Range", "Syntax", "Version", "parse_range", "parse_version", "range_syntax"]

Syntax = Literal["npm", "pep440"]

# --------------------------------------------------------------------------- grammar

_NUM: Final = r"(?:0|[1-9][0-9]*)"
_PRE_ID: Final = rf"(?:{_NUM}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID: Final = r"[0-9A-Za-z-]+"
_PRE: Final = rf"{_PRE_ID}(?:\.{_PRE_ID})*"
_BUILD: Final = rf"{_BUILD_ID}(?:\.{_BUILD_ID})*"
_SEMVER_RE: Final = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})(?:-({_PRE}))?(?:\+({_BUILD}))?", re.ASCII
)
# an npm partial version: any part may be x, X or *; pre-release and build only after three parts
_X: Final = rf"(?:{_NUM}|[xX*])"
# build metadata may follow any of them and is ignored, as node-semver strips it first
_PARTIAL: Final = rf"v?({_X})(?:\.({_X})(?:\.({_X})(?:-({_PRE}))?)?)?(?:\+({_BUILD}))?"
_COMPARATOR_RE: Final = re.compile(rf"(<=|>=|<|>|=|~>|~|\^)?\s*{_PARTIAL}(?=\s|$)", re.ASCII)
_HYPHEN_RE: Final = re.compile(rf"({_PARTIAL})\s+-\s+({_PARTIAL})", re.ASCII)

_VERSION_HINT: Final = (
    "write MAJOR.MINOR.PATCH, e.g. '1.2.0'; pre-release and build go after '-' and '+': "
    "'1.2.0-rc.1+build.5'"
)
_RANGE_HINT: Final = (
    "write an npm range such as '^1.2.3' or a PEP 440 specifier set such as '>=1.2,<2'"
)
_SYNTAXES: Final = ("npm", "pep440")


# --------------------------------------------------------------------------- Version


def _pre_key(prerelease: tuple[int | str, ...]) -> tuple[Any, ...]:
    # SemVer section 11: a release outranks its pre-releases; numeric identifiers
    # compare numerically and rank below alphanumeric ones, which compare in ASCII
    # order; a longer list wins when all shared identifiers are equal.
    if not prerelease:
        return (1,)
    return (0, *((0, p) if isinstance(p, int) else (1, p) for p in prerelease))


_IDENT_RE: Final = re.compile(r"[0-9A-Za-z-]+", re.ASCII)


@final
class Version:
    """A SemVer 2.0.0 version: immutable, hashable, ordered by precedence.

    Build metadata does not affect precedence (:meth:`compare_precedence`), but it
    breaks ties in ``<`` and ``==`` so the order is total and agrees with ``==``:
    ``Version.parse('1.0.0+a') != Version.parse('1.0.0+b')``.
    """

    __slots__ = ("_hash", "_key", "_prec", "build", "major", "minor", "patch", "prerelease")

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...]
    build: tuple[str, ...]
    _prec: tuple[Any, ...]
    _key: tuple[Any, ...]
    _hash: int

    def __init__(
        self,
        major: int,
        minor: int = 0,
        patch: int = 0,
        prerelease: tuple[int | str, ...] = (),
        build: tuple[str, ...] = (),
    ) -> None:
        pre = tuple(prerelease)
        bld = tuple(build)
        for number in (major, minor, patch):
            if type(number) is not int or number < 0:
                self._invalid(f"{number!r} is not a non-negative integer", major, minor, patch)
        for p in pre:
            if isinstance(p, str):
                if not _IDENT_RE.fullmatch(p) or p.isdigit():
                    self._invalid(f"{p!r} is not a pre-release identifier", major, minor, patch)
            elif type(p) is not int or p < 0:
                self._invalid(f"{p!r} is not a pre-release identifier", major, minor, patch)
        for b in bld:
            if not isinstance(b, str) or not _IDENT_RE.fullmatch(b):
                self._invalid(f"{b!r} is not a build identifier", major, minor, patch)
        self._setup(major, minor, patch, pre, bld)

    @staticmethod
    def _invalid(reason: str, major: object, minor: object, patch: object) -> NoReturn:
        raise VersionError(
            f"Version({major!r}, {minor!r}, {patch!r}, ...) is not a SemVer 2.0.0 version: "
            f"{reason}",
            where=f"Version({major!r}, {minor!r}, {patch!r}, ...)",
            hint="numbers are integers >= 0; pre-release identifiers are integers or "
            "[0-9A-Za-z-]+ strings that are not all digits; build identifiers are "
            "[0-9A-Za-z-]+ strings",
        )

    def _setup(
        self, major: int, minor: int, patch: int, pre: tuple[int | str, ...], build: tuple[str, ...]
    ) -> None:
        init = object.__setattr__
        init(self, "major", major)
        init(self, "minor", minor)
        init(self, "patch", patch)
        init(self, "prerelease", pre)
        init(self, "build", build)
        prec = (major, minor, patch, _pre_key(pre))
        init(self, "_prec", prec)
        init(self, "_key", (prec, build))
        init(self, "_hash", hash((prec, build)))

    @classmethod
    def _trusted(
        cls, major: int, minor: int, patch: int, pre: tuple[int | str, ...], build: tuple[str, ...]
    ) -> Version:
        # for values the parser has already checked
        self = cls.__new__(cls)
        self._setup(major, minor, patch, pre, build)
        return self

    @classmethod
    def parse(cls, text: str) -> Version:
        """Read strict SemVer 2.0.0 text (no leading ``v``, no leading zeros).

        Surrounding whitespace is ignored. Raises :class:`VersionError`.
        """
        if not isinstance(text, str):
            raise VersionError(
                f"{text!r} is not a SemVer 2.0.0 version: a version is text",
                where=repr(text),
                hint=_VERSION_HINT,
            )
        return _parse_version(text)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def release(self) -> tuple[int, int, int]:
        """``(major, minor, patch)``."""
        return (self.major, self.minor, self.patch)

    def compare_precedence(self, other: Version) -> int:
        """-1, 0 or 1 by SemVer precedence, which ignores build metadata."""
        a, b = self._prec, other._prec
        return (a > b) - (a < b)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(map(str, self.prerelease))
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Version('{self}')"

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return bool(self._key == other._key)

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return bool(self._key < other._key)

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return bool(self._key <= other._key)

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return bool(self._key > other._key)

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return bool(self._key >= other._key)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Version is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Version is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Version, (self.major, self.minor, self.patch, self.prerelease, self.build))


def _identifiers(text: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


@functools.lru_cache(maxsize=65536)
def _parse_version(text: str) -> Version:
    m = _SEMVER_RE.fullmatch(text.strip())
    if m is None:
        reason = _why_not_semver(text.strip())
        raise VersionError(
            f"'{text}' is not a SemVer 2.0.0 version" + (f": {reason}" if reason else ""),
            where=text,
            hint=_VERSION_HINT,
        )
    major, minor, patch, pre, build = m.groups()
    return Version._trusted(
        int(major),
        int(minor),
        int(patch),
        _identifiers(pre) if pre else (),
        tuple(build.split(".")) if build else (),
    )


def parse_version(text: str) -> Version:
    """Alias of :meth:`Version.parse`."""
    return Version.parse(text)


def _why_not_semver(text: str) -> str | None:
    """The one thing to fix, for the common mistakes; None when the general hint says it."""
    if not text:
        return "it is empty"
    if text[0] in "vV" and _SEMVER_RE.fullmatch(text[1:]):
        return f"drop the leading '{text[0]}': '{text[1:]}'"
    main, _, rest = text.partition("+")
    core, _, pre = main.partition("-")
    parts = core.split(".")
    if len(parts) > 3:
        return f"it has {len(parts)} numbers, SemVer has three (MAJOR.MINOR.PATCH)"
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        if any(len(p) > 1 and p[0] == "0" for p in parts):
            fixed = ".".join(str(int(p)) for p in parts)
            return f"numbers may not have leading zeros ({fixed!r})"
        if "-" in main and not pre:
            return "the pre-release after '-' is empty"
        for ident in pre.split(".") if pre else ():
            if not ident:
                return "a pre-release identifier is empty (two dots in a row, or a trailing dot)"
            if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
                return f"the numeric pre-release identifier '{ident}' has a leading zero"
        if "+" in text and not rest:
            return "the build metadata after '+' is empty"
        for ident in rest.split(".") if rest else ():
            if not ident:
                return "a build identifier is empty (two dots in a row, or a trailing dot)"
        return "identifiers may only use ASCII letters, digits and '-'"
    return None


# --------------------------------------------------------------------------- npm ranges

# A comparator is (op, bound), op one of "<", "<=", ">", ">=", "="; a set of them is ANDed.
_Comparator = tuple[str, Version]
# The parts of one partial version as written: major, minor, patch, pre-release, build.
_Parts = tuple[str | None, str | None, str | None, str | None, str | None]
# One comparator set, precompiled for ``contains``: (lower, lower_strict, upper,
# upper_strict, prerelease_ok). lower/upper are precedence keys (None: unbounded);
# prerelease_ok holds (major, minor, patch) of every comparator naming a pre-release.
_Key = tuple[Any, ...]
_Compiled = tuple[_Key | None, bool, _Key | None, bool, frozenset[tuple[int, int, int]]]

_ZERO: Final[tuple[int | str, ...]] = (0,)
_NULL_BOUND: Final = Version._trusted(0, 0, 0, _ZERO, ())  # '<0.0.0-0' matches nothing


def _v(major: int, minor: int, patch: int, pre: tuple[int | str, ...] = ()) -> Version:
    return Version._trusted(major, minor, patch, pre, ())


def _is_x(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


def _n(part: str | None) -> int:
    assert part is not None
    return int(part)


def _caret(parts: _Parts, inc: bool) -> list[_Comparator]:
    M, m, p, pr, _ = parts
    z = _ZERO if inc else ()
    if _is_x(M):
        return []
    mj = _n(M)
    if _is_x(m):
        return [(">=", _v(mj, 0, 0, z)), ("<", _v(mj + 1, 0, 0, _ZERO))]
    mn = _n(m)
    if _is_x(p):
        upper = _v(0, mn + 1, 0, _ZERO) if mj == 0 else _v(mj + 1, 0, 0, _ZERO)
        return [(">=", _v(mj, mn, 0, z)), ("<", upper)]
    pt = _n(p)
    if mj == 0:
        upper = _v(0, 0, pt + 1, _ZERO) if mn == 0 else _v(0, mn + 1, 0, _ZERO)
    else:
        upper = _v(mj + 1, 0, 0, _ZERO)
    # node-semver gives a full caret a -0 lower bound only below 1.0.0
    # a full version is its own lower bound, pre-releases allowed or not (node-semver 7.8)
    lower = _v(mj, mn, pt, _identifiers(pr) if pr else ())
    return [(">=", lower), ("<", upper)]


def _tilde(parts: _Parts, inc: bool) -> list[_Comparator]:
    # like carets and x-ranges, a partial tilde gets a -0 lower bound when pre-releases
    # are included (node-semver 7.8: '~1.2' is '1.2.x'); a full version stays as written
    M, m, p, pr, _ = parts
    z = _ZERO if inc else ()
    if _is_x(M):
        return []
    mj = _n(M)
    if _is_x(m):
        return [(">=", _v(mj, 0, 0, z)), ("<", _v(mj + 1, 0, 0, _ZERO))]
    mn = _n(m)
    lower = _v(mj, mn, 0, z) if _is_x(p) else _v(mj, mn, _n(p), _identifiers(pr) if pr else ())
    return [(">=", lower), ("<", _v(mj, mn + 1, 0, _ZERO))]


def _xrange(op: str, parts: _Parts, inc: bool) -> list[_Comparator]:
    """A plain comparator, maybe with x parts (node-semver's ``replaceXRange``)."""
    M, m, p, pr, _ = parts
    xM = _is_x(M)
    xm = xM or _is_x(m)
    xp = xm or _is_x(p)
    if op == "=" and xp:
        op = ""
    z = _ZERO if inc else ()
    if xM:
        return [("<", _NULL_BOUND)] if op in (">", "<") else []
    mj = _n(M)
    mn = 0 if xm else _n(m)
    if op and xp:
        if op == ">":
            op = ">="
            if xm:
                mj, mn = mj + 1, 0
            else:
                mn += 1
        elif op == "<=":
            op = "<"
            if xm:
                mj += 1
            else:
                mn += 1
        return [(op, _v(mj, mn, 0, _ZERO if op == "<" else z))]
    if xm:
        return [(">=", _v(mj, 0, 0, z)), ("<", _v(mj + 1, 0, 0, _ZERO))]
    if xp:
        return [(">=", _v(mj, mn, 0, z)), ("<", _v(mj, mn + 1, 0, _ZERO))]
    return [(op or "=", _v(mj, mn, _n(p), _identifiers(pr) if pr else ()))]


def _hyphen(low: _Parts, high: _Parts, inc: bool) -> list[_Comparator]:
    """``low - high`` (node-semver's ``hyphenReplace``)."""
    z = _ZERO if inc else ()
    out: list[_Comparator] = []
    fM, fm, fp, fpr, _ = low
    if _is_x(fM):
        pass
    elif _is_x(fm):
        out.append((">=", _v(_n(fM), 0, 0, z)))
    elif _is_x(fp):
        out.append((">=", _v(_n(fM), _n(fm), 0, z)))
    elif fpr:
        out.append((">=", _v(_n(fM), _n(fm), _n(fp), _identifiers(fpr))))
    else:
        out.append((">=", _v(_n(fM), _n(fm), _n(fp), z)))
    tM, tm, tp, tpr, _ = high
    if _is_x(tM):
        pass
    elif _is_x(tm):
        out.append(("<", _v(_n(tM) + 1, 0, 0, _ZERO)))
    elif _is_x(tp):
        out.append(("<", _v(_n(tM), _n(tm) + 1, 0, _ZERO)))
    elif tpr:
        out.append(("<=", _v(_n(tM), _n(tm), _n(tp), _identifiers(tpr))))
    elif inc:
        out.append(("<", _v(_n(tM), _n(tm), _n(tp) + 1, _ZERO)))
    else:
        out.append(("<=", _v(_n(tM), _n(tm), _n(tp))))
    return out


def _x_then_number(parts: _Parts) -> bool:
    """``x.1``, ``1.x.5``: a number after a wildcard (node-semver's invalidXRangeOrder)."""
    M, m, p, _, _ = parts
    return (_is_x(M) and not _is_x(m)) or (_is_x(m) and p is not None and not _is_x(p))


def _tidy(comparators: list[_Comparator], inc: bool) -> list[_Comparator] | None:
    """node-semver's clean-up of one set: None if it holds ``<0.0.0-0`` (it matches
    nothing), ``>=0.0.0`` is dropped as ``*`` is, and so are repeated comparators."""
    gte0 = _v(0, 0, 0, _ZERO if inc else ())._key
    seen: dict[tuple[str, _Key], _Comparator] = {}
    for op, bound in comparators:
        if op == "<" and bound._prec == _NULL_BOUND._prec:
            return None
        if op == ">=" and bound._key == gte0:
            continue
        seen.setdefault((op, bound._prec), (op, bound))
    return list(seen.values())


def _compile(comparators: list[_Comparator]) -> _Compiled | None:
    """One set as an interval of precedence keys; None when no version is in it."""
    lower: _Key | None = None
    lower_strict = False
    upper: _Key | None = None
    upper_strict = False
    allowed: set[tuple[int, int, int]] = set()
    for op, bound in comparators:
        key = bound._prec
        if bound.prerelease:
            allowed.add((bound.major, bound.minor, bound.patch))
        if op in (">", ">=", "="):
            strict = op == ">"
            if lower is None or key > lower or (key == lower and strict):
                lower, lower_strict = key, strict
        if op in ("<", "<=", "="):
            strict = op == "<"
            if upper is None or key < upper or (key == upper and strict):
                upper, upper_strict = key, strict
    if (
        lower is not None
        and upper is not None
        and (lower > upper or (lower == upper and (lower_strict or upper_strict)))
    ):
        return None
    return (lower, lower_strict, upper, upper_strict, frozenset(allowed))


def _parts(groups: tuple[str | Any, ...]) -> _Parts:
    return (groups[0], groups[1], groups[2], groups[3], groups[4])


# One alternative (between '||') as read: a hyphen range, or a list of (operator, parts).
_Alternative = tuple[_Parts, _Parts] | list[tuple[str, _Parts]]


class _NpmSyntax(Exception):
    """Where reading npm text stopped: the alternative and the offset in it."""

    def __init__(self, alternative: str, pos: int) -> None:
        super().__init__(alternative, pos)
        self.alternative = alternative
        self.pos = pos


def _read_npm(text: str) -> tuple[list[_Alternative], str]:
    """The alternatives of an npm range and its normalized text; raises _NpmSyntax."""
    alternatives: list[_Alternative] = []
    normalized: list[str] = []
    for raw in text.split("||"):
        alt = " ".join(raw.split())
        h = _HYPHEN_RE.fullmatch(alt)
        if h is not None:
            g = h.groups()
            alternatives.append((_parts(g[1:6]), _parts(g[7:12])))
            normalized.append(f"{g[0]} - {g[6]}")
            continue
        comparators: list[tuple[str, _Parts]] = []
        words: list[str] = []
        pos = 0
        while pos < len(alt):
            if alt[pos] == " ":
                pos += 1
                continue
            m = _COMPARATOR_RE.match(alt, pos)
            if m is None:
                raise _NpmSyntax(alt, pos)
            g = m.groups()
            parts = _parts(g[1:6])
            if g[0] not in ("^", "~", "~>") and _x_then_number(parts):
                raise _NpmSyntax(alt, pos)  # node-semver refuses these in plain comparators
            comparators.append((g[0] or "", parts))
            words.append(alt[pos : m.end()].replace(" ", ""))
            pos = m.end()
        alternatives.append(comparators)
        normalized.append(" ".join(words))
    return alternatives, " || ".join(normalized)


def _desugar(alternatives: list[_Alternative], inc: bool) -> list[list[_Comparator] | None]:
    """Each alternative as plain comparators (None: matches nothing)."""
    out: list[list[_Comparator] | None] = []
    for alt in alternatives:
        if isinstance(alt, tuple):
            out.append(_tidy(_hyphen(alt[0], alt[1], inc), inc))
            continue
        comparators: list[_Comparator] = []
        for op, parts in alt:
            if op == "^":
                comparators += _caret(parts, inc)
            elif op in ("~", "~>"):
                comparators += _tilde(parts, inc)
            else:
                comparators += _xrange(op, parts, inc)
        out.append(_tidy(comparators, inc))
    return out


def _format_set(comparators: list[_Comparator] | None) -> str:
    if comparators is None:
        return "<0.0.0-0"
    if not comparators:
        return "*"
    # node-semver prints '=' as nothing and leaves build metadata out
    return " ".join(("" if op == "=" else op) + _bare(v) for op, v in comparators)


def _bare(v: Version) -> str:
    text = f"{v.major}.{v.minor}.{v.patch}"
    return text + "-" + ".".join(map(str, v.prerelease)) if v.prerelease else text


_OPS_RE: Final = re.compile(r"[<>=~^]*")


def _why_not_npm(alternative: str, pos: int) -> str:
    token = alternative[pos:].split(" ", 1)[0]
    ops = _OPS_RE.match(token).group(0)  # type: ignore[union-attr]
    rest = token[len(ops) :]
    if token == "-":
        return "a hyphen range needs one version on each side of ' - ', e.g. '1.2 - 2.3.4'"
    if ops in ("=>", "=<"):
        return f"'{ops}' is not an operator; did you mean '{ops[::-1]}'?"
    if len(ops) > 1 and ops not in ("<=", ">=", "~>"):
        return f"'{ops}' is not an operator; use one of <, <=, >, >=, =, ~, ^"
    if not rest:
        return f"'{ops}' has no version after it"
    numbers = rest.removeprefix("v").split("-", 1)[0].split("+", 1)[0].split(".")
    if len(numbers) > 3 and all(n.isdigit() or n in ("x", "X", "*") for n in numbers):
        return f"'{token}' has {len(numbers)} numbers; a version has at most three"
    if any(len(n) > 1 and n[0] == "0" and n.isdigit() for n in numbers):
        return f"'{token}' has a number with a leading zero"
    if "-" in rest and len(numbers) < 3:
        return f"'{token}' has a pre-release on a partial version; write all three numbers"
    wild = [n in ("x", "X", "*") for n in numbers]
    if any(wild) and not all(wild[wild.index(True) :]):
        return (
            f"'{token}' has a number after a wildcard; a wildcard stands for every part "
            "after it, as in '1.x'"
        )
    if ops in ("<", "<=", ">", ">=", "") and _is_pep440_version(rest):
        return (
            f"'{token}' is PEP 440, which separates clauses with ',' "
            f"(e.g. '{token}, <2'); npm versions are SemVer ('1.0.0-rc.1')"
        )
    return (
        f"'{token}' is not a version, a partial version such as '1.2' or '1.x', "
        "or one of those after an operator"
    )


# --------------------------------------------------------------------------- PEP 440

_PEP440_START: Final = ("~=", "==", "!=")  # "===" starts with "=="
_MEMO_SIZE: Final = 4096  # answers remembered per PEP 440 range
_PEP440_TAGS: Final = frozenset({"a", "alpha", "b", "beta", "c", "rc"})
_TAG_RE: Final = re.compile(r"([A-Za-z]+)([0-9]*)", re.ASCII)


@functools.lru_cache(maxsize=4096)
def _pep440_representable(prerelease: tuple[int | str, ...]) -> bool:
    if not prerelease:
        return True
    first, rest = prerelease[0], prerelease[1:]
    if not isinstance(first, str):
        return False
    m = _TAG_RE.fullmatch(first)
    if m is None or m.group(1).lower() not in _PEP440_TAGS:
        return False
    if not rest:
        return True
    return not m.group(2) and len(rest) == 1 and isinstance(rest[0], int)


@functools.lru_cache(maxsize=65536)
def _pep440_version(version: Version) -> PyVersion | None:
    """What ``packaging`` reads ``str(version)`` as; None when that is not PEP 440."""
    if not _pep440_representable(version.prerelease):
        return None
    try:
        return PyVersion(str(version))
    except InvalidVersion:  # build metadata that is not a valid local version, e.g. '+-x'
        return None


def _is_pep440_version(text: str) -> bool:
    try:
        PyVersion(text)
    except InvalidVersion:
        return False
    return True


def _has_pep440_marker(text: str) -> bool:
    return "," in text or text.startswith(_PEP440_START)


@functools.lru_cache(maxsize=8192)
def range_syntax(text: str) -> Syntax:
    """The syntax ``Range.parse(text)`` reads ``text`` in (the rule in the module
    docstring): PEP 440 for a comma or a leading ``~=``, ``==``, ``!=``; PEP 440 for
    one comparator packaging accepts with no ``-`` in it; npm otherwise."""
    stripped = text.strip()
    if _has_pep440_marker(stripped):
        return "pep440"
    if "-" not in stripped and stripped[:1] in ("<", ">"):
        try:
            Specifier(stripped)
        except InvalidSpecifier:
            return "npm"
        return "pep440"
    return "npm"


def _why_not_pep440(text: str) -> str:
    if "," in text:
        why_pep440 = "it contains ','"
    elif text.startswith(_PEP440_START):
        why_pep440 = (
            f"it starts with '{next(s for s in ('===', '~=', '==', '!=') if text.startswith(s))}'"
        )
    else:
        why_pep440 = "PEP 440 syntax was asked for"
    clauses = [c.strip() for c in text.split(",")]
    if not any(clauses):
        return f"it was read as PEP 440 because {why_pep440}, but has no specifier in it"
    for clause in clauses:
        if not clause:
            continue  # packaging skips empty clauses
        try:
            Specifier(clause)
        except InvalidSpecifier:
            detail = ""
            if clause.startswith("~=") and re.fullmatch(r"~=\s*v?[0-9]+", clause):
                detail = f": '~=' needs at least two numbers, e.g. '{clause}.0'"
            elif clause.startswith(("^", "~")) or "||" in clause or " " in clause.strip():
                detail = ": npm syntax cannot be mixed with PEP 440 in one range"
            return (
                f"it was read as PEP 440 because {why_pep440}, and '{clause}' is not "
                f"a PEP 440 specifier{detail}"
            )
    return f"it was read as PEP 440 because {why_pep440}, but packaging refuses it"


# --------------------------------------------------------------------------- Range


@final
class Range:
    """A set of acceptable versions, in npm or PEP 440 syntax (see the module docstring).

    ``Range.parse`` is cached and is what callers should use; ``Range(text)`` reads
    the text afresh. Two ranges are equal when they have the same syntax and the
    same normalized text (whitespace and, for PEP 440, clause order do not matter).
    """

    __slots__ = (
        "_excl",
        "_incl",
        "_memo",
        "_normalized",
        "_pep_arbitrary",
        "_sets",
        "_spec",
        "syntax",
        "text",
    )

    syntax: Literal["npm", "pep440"]
    text: str
    _spec: SpecifierSet | None
    _pep_arbitrary: bool
    _sets: tuple[list[list[_Comparator] | None], list[list[_Comparator] | None]] | None
    _memo: dict[tuple[Version, bool], bool] | None
    _excl: tuple[_Compiled, ...]
    _incl: tuple[_Compiled, ...]
    _normalized: str

    def __init__(self, text: str, syntax: Syntax | None = None) -> None:
        if syntax is not None and syntax not in _SYNTAXES:
            raise RangeError(
                f"{syntax!r} is not a range syntax: use 'npm', 'pep440' or None (decide "
                "from the text)",
                where=repr(syntax),
                hint=_RANGE_HINT,
            )
        if not isinstance(text, str):
            raise RangeError(
                f"{text!r} is not a version range: a range is text",
                where=repr(text),
                hint=_RANGE_HINT,
            )
        init = object.__setattr__
        stripped = text.strip()
        init(self, "text", stripped)
        if (syntax or range_syntax(stripped)) == "pep440":
            try:
                spec = SpecifierSet(stripped)
            except InvalidSpecifier:
                spec = None
            if spec is None or not len(spec):
                raise RangeError(
                    f"'{stripped}' is not a valid version range: {_why_not_pep440(stripped)}",
                    where=stripped,
                    hint=_RANGE_HINT,
                )
            init(self, "syntax", "pep440")
            init(self, "_spec", spec)
            init(self, "_pep_arbitrary", any(s.operator == "===" for s in spec))
            init(self, "_sets", None)
            init(self, "_memo", {})
            init(self, "_excl", ())
            init(self, "_incl", ())
            init(self, "_normalized", str(spec))
            return
        try:
            alternatives, normalized = _read_npm(stripped)
        except _NpmSyntax as exc:
            raise RangeError(
                f"'{stripped}' is not a valid version range: "
                f"{_why_not_npm(exc.alternative, exc.pos)}",
                where=stripped,
                hint=_RANGE_HINT,
            ) from None
        excl, incl = _desugar(alternatives, inc=False), _desugar(alternatives, inc=True)
        init(self, "syntax", "npm")
        init(self, "_spec", None)
        init(self, "_pep_arbitrary", False)
        init(self, "_sets", (excl, incl))
        init(self, "_memo", None)
        init(self, "_excl", tuple(c for s in excl if s is not None for c in [_compile(s)] if c))
        init(self, "_incl", tuple(c for s in incl if s is not None for c in [_compile(s)] if c))
        init(self, "_normalized", normalized)

    @classmethod
    def parse(cls, text: str, syntax: Syntax | None = None) -> Range:
        """Read a range (cached), in ``syntax`` or, by default, the one the text
        calls for (:func:`range_syntax`). Raises :class:`RangeError`."""
        if not isinstance(text, str):
            return cls(text, syntax)  # raises the RangeError
        return _parse_range(text, syntax)

    def contains(self, version: Version | str, *, include_prerelease: bool = False) -> bool:
        """Whether ``version`` is in the range. A string is parsed first and a bad
        one raises :class:`VersionError` (``in`` answers False instead)."""
        if isinstance(version, str):
            version = _parse_version(version)
        elif not isinstance(version, Version):
            Version.parse(version)  # raises the VersionError for what is not text
        if self._spec is not None:
            return self._contains_pep440(version, include_prerelease)
        key = version._prec
        if include_prerelease:
            for lower, lower_strict, upper, upper_strict, _ in self._incl:
                if lower is not None and (key <= lower if lower_strict else key < lower):
                    continue
                if upper is not None and (key >= upper if upper_strict else key > upper):
                    continue
                return True
            return False
        pre = version.prerelease
        for lower, lower_strict, upper, upper_strict, allowed in self._excl:
            if lower is not None and (key <= lower if lower_strict else key < lower):
                continue
            if upper is not None and (key >= upper if upper_strict else key > upper):
                continue
            if pre and key[:3] not in allowed:
                continue
            return True
        return False

    def _contains_pep440(self, version: Version, include_prerelease: bool) -> bool:
        # packaging takes microseconds per test; a resolver asks the same few again and again
        memo = self._memo
        assert memo is not None
        known = memo.get((version, include_prerelease))
        if known is not None:
            return known
        spec = self._spec
        assert spec is not None
        # packaging's own policy for the set: pre-releases only where a clause names one
        # (what SpecifierSet.filter does when a final release matches too, as pip does)
        prereleases = include_prerelease or bool(spec.prereleases)
        if not _pep440_representable(version.prerelease):
            answer = False
        elif self._pep_arbitrary:
            # '===' compares text, so give packaging the very text it would be given
            answer = spec.contains(str(version), prereleases=prereleases)
        else:
            converted = _pep440_version(version)
            answer = converted is not None and spec.contains(converted, prereleases=prereleases)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[(version, include_prerelease)] = answer
        return answer

    def __contains__(self, version: object) -> bool:
        if isinstance(version, Version):
            return self.contains(version)
        if isinstance(version, str):
            try:
                return self.contains(_parse_version(version))
            except VersionError:
                return False
        return False

    def max_satisfying(
        self, versions: Iterable[Version], *, include_prerelease: bool = False
    ) -> Version | None:
        """The greatest of ``versions`` in the range, or None.

        For PEP 440 this is ``max(SpecifierSet(text).filter(versions))``: when no final
        release is in the range, its pre-releases are, as PEP 440 asks of installers."""
        if self._spec is not None and not include_prerelease:
            candidates = list(versions)
            return self._best(candidates, False) or self._best(candidates, True)
        return self._best(versions, include_prerelease)

    def _best(self, versions: Iterable[Version], include_prerelease: bool) -> Version | None:
        best: Version | None = None
        for v in versions:
            if (best is None or v > best) and self.contains(
                v, include_prerelease=include_prerelease
            ):
                best = v
        return best

    def desugared(self, *, include_prerelease: bool = False) -> str:
        """What the range means as plain comparators, as node-semver's ``Range.range``
        prints it: ``'^1.2'`` is ``'>=1.2.0 <2.0.0-0'``, alternatives are joined by
        ``||``, ``*`` is any version and ``<0.0.0-0`` none. Alternatives that match
        nothing are dropped (unless all do) and repeats are shown once. For PEP 440,
        the normalized specifier set."""
        if self._sets is None:
            return self._normalized
        sets = self._sets[1] if include_prerelease else self._sets[0]
        if len(sets) > 1:
            sets = [s for s in sets if s is not None] or [None]
        return "||".join(dict.fromkeys(_format_set(s) for s in sets))

    @property
    def normalized(self) -> str:
        """The text ``==`` and ``hash`` use: ``'>= 1.2'`` → ``'>=1.2'``,
        ``'<2, >=1'`` → ``'<2,>=1'`` (packaging's order)."""
        return self._normalized

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Range({self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Range):
            return NotImplemented
        return (self.syntax, self._normalized) == (other.syntax, other._normalized)

    def __hash__(self) -> int:
        return hash((self.syntax, self._normalized))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Range is immutable: cannot set {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Range.parse, (self.text, self.syntax))


@functools.lru_cache(maxsize=8192)
def _parse_range(text: str, syntax: Syntax | None) -> Range:
    return Range(text, syntax)


def parse_range(text: str, syntax: Syntax | None = None) -> Range:
    """Alias of :meth:`Range.parse`."""
    return Range.parse(text, syntax)


ANY: Final[Range] = Range.parse("*")
