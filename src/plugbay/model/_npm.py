"""npm ranges: reading node-semver 7.8 text and desugaring it to plain comparators.

How the text is read and what each form means is described in
:mod:`plugbay.model.versions`; this module holds the machinery :class:`Range` uses.
"""

from __future__ import annotations

import re
from typing import Any, Final

from plugbay.model._pep440 import _is_pep440_version
from plugbay.model._semver import _BUILD, _NUM, _PRE, Version, _identifiers

# an npm partial version: any part may be x, X or *; pre-release and build only after three parts
_X: Final = rf"(?:{_NUM}|[xX*])"
# build metadata may follow any of them and is ignored, as node-semver strips it first
_PARTIAL: Final = rf"v?({_X})(?:\.({_X})(?:\.({_X})(?:-({_PRE}))?)?)?(?:\+({_BUILD}))?"
_COMPARATOR_RE: Final = re.compile(rf"(<=|>=|<|>|=|~>|~|\^)?\s*{_PARTIAL}(?=\s|$)", re.ASCII)
_HYPHEN_RE: Final = re.compile(rf"({_PARTIAL})\s+-\s+({_PARTIAL})", re.ASCII)

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


def _has_x(parts: _Parts) -> bool:
    return _is_x(parts[0]) or _is_x(parts[1]) or _is_x(parts[2])


def _x_span(parts: _Parts, inc: bool) -> list[_Comparator]:
    """The versions a partial version names (node-semver's x-range): ``*`` every one,
    ``1`` is ``1.x.x``, ``1.2`` is ``1.2.x``; a -0 lower bound when pre-releases are
    included."""
    M, m, _, _, _ = parts
    z = _ZERO if inc else ()
    if _is_x(M):
        return []
    mj = _n(M)
    if _is_x(m):
        return [(">=", _v(mj, 0, 0, z)), ("<", _v(mj + 1, 0, 0, _ZERO))]
    mn = _n(m)
    return [(">=", _v(mj, mn, 0, z)), ("<", _v(mj, mn + 1, 0, _ZERO))]


def _exact(parts: _Parts) -> Version:
    """A full version as written, its pre-release kept."""
    M, m, p, pr, _ = parts
    return _v(_n(M), _n(m), _n(p), _identifiers(pr) if pr else ())


def _caret(parts: _Parts, inc: bool) -> list[_Comparator]:
    M, m, p, _, _ = parts
    if _is_x(M) or _is_x(m) or (_is_x(p) and _n(M) == 0):
        return _x_span(parts, inc)  # '^1' is '1.x', '^0.2' is '0.2.x'
    mj, mn = _n(M), _n(m)
    if _is_x(p):
        return [(">=", _v(mj, mn, 0, _ZERO if inc else ())), ("<", _v(mj + 1, 0, 0, _ZERO))]
    pt = _n(p)
    if mj == 0:
        upper = _v(0, 0, pt + 1, _ZERO) if mn == 0 else _v(0, mn + 1, 0, _ZERO)
    else:
        upper = _v(mj + 1, 0, 0, _ZERO)
    # a full version is its own lower bound, pre-releases allowed or not (node-semver 7.8)
    return [(">=", _exact(parts)), ("<", upper)]


def _tilde(parts: _Parts, inc: bool) -> list[_Comparator]:
    # like carets and x-ranges, a partial tilde gets a -0 lower bound when pre-releases
    # are included (node-semver 7.8: '~1.2' is '1.2.x'); a full version stays as written
    if _has_x(parts):
        return _x_span(parts, inc)
    M, m, _, _, _ = parts
    return [(">=", _exact(parts)), ("<", _v(_n(M), _n(m) + 1, 0, _ZERO))]


def _xrange(op: str, parts: _Parts, inc: bool) -> list[_Comparator]:
    """A plain comparator, maybe with x parts (node-semver's ``replaceXRange``)."""
    M, m, _, _, _ = parts
    if op == "=" and _has_x(parts):
        op = ""
    if _is_x(M):
        return [("<", _NULL_BOUND)] if op in (">", "<") else []
    if not _has_x(parts):
        return [(op or "=", _exact(parts))]
    if op:
        return [_x_bound(op, _n(M), 0 if _is_x(m) else _n(m), _is_x(m), _ZERO if inc else ())]
    return _x_span(parts, inc)


def _x_bound(op: str, mj: int, mn: int, xm: bool, z: tuple[int | str, ...]) -> _Comparator:
    """An operator before a partial version: ``>1.2`` is ``>=1.3.0``, ``<=1`` is ``<2.0.0-0``."""
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
    return (op, _v(mj, mn, 0, _ZERO if op == "<" else z))


def _hyphen(low: _Parts, high: _Parts, inc: bool) -> list[_Comparator]:
    """``low - high`` (node-semver's ``hyphenReplace``): a partial end stands for its
    whole x-range; a full lower end gets a -0 when pre-releases are included."""
    if _has_x(low):
        out = _x_span(low, inc)[:1]
    else:
        M, m, p, pr, _ = low
        out = [(">=", _exact(low) if pr else _v(_n(M), _n(m), _n(p), _ZERO if inc else ()))]
    if _has_x(high):
        return out + _x_span(high, inc)[1:]
    M, m, p, pr, _ = high
    if inc and not pr:
        return [*out, ("<", _v(_n(M), _n(m), _n(p) + 1, _ZERO))]
    return [*out, ("<=", _exact(high))]


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
    lower, lower_strict = _lower_bound(comparators)
    upper, upper_strict = _upper_bound(comparators)
    if (
        lower is not None
        and upper is not None
        and (
            lower > upper
            or (lower == upper and (lower_strict or upper_strict))
            or (lower_strict and upper_strict and upper == _next_key(lower))
        )
    ):
        return None
    allowed = frozenset((b.major, b.minor, b.patch) for _, b in comparators if b.prerelease)
    return (lower, lower_strict, upper, upper_strict, allowed)


def _next_key(key: _Key) -> _Key:
    """The precedence key of the least version above the one ``key`` is of, so that
    ``>1.0.0 <1.0.1-0`` holds none: after a release its next patch's ``-0``, the least
    pre-release there is; after a pre-release, the same with one more identifier, 0."""
    major, minor, patch, pre = key
    if pre == (1,):  # a release (_semver._pre_key)
        return (major, minor, patch + 1, (0, (0, 0)))
    return (major, minor, patch, (*pre, (0, 0)))


def _lower_bound(comparators: list[_Comparator]) -> tuple[_Key | None, bool]:
    """The highest lower bound of a set and whether it is strict (``>``)."""
    lower: _Key | None = None
    lower_strict = False
    for op, bound in comparators:
        if op in (">", ">=", "="):
            key, strict = bound._prec, op == ">"
            if lower is None or key > lower or (key == lower and strict):
                lower, lower_strict = key, strict
    return lower, lower_strict


def _upper_bound(comparators: list[_Comparator]) -> tuple[_Key | None, bool]:
    """The lowest upper bound of a set and whether it is strict (``<``)."""
    upper: _Key | None = None
    upper_strict = False
    for op, bound in comparators:
        if op in ("<", "<=", "="):
            key, strict = bound._prec, op == "<"
            if upper is None or key < upper or (key == upper and strict):
                upper, upper_strict = key, strict
    return upper, upper_strict


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
    why = _why_not_operator(token, ops, rest) or _why_not_partial(token, rest)
    if why is not None:
        return why
    if ops in ("<", "<=", ">", ">=", "") and _is_pep440_version(rest):
        return (
            f"'{token}' is PEP 440, which separates clauses with ',' "
            f"(e.g. '{token}, <2'); npm versions are SemVer ('1.0.0-rc.1')"
        )
    return (
        f"'{token}' is not a version, a partial version such as '1.2' or '1.x', "
        "or one of those after an operator"
    )


def _why_not_operator(token: str, ops: str, rest: str) -> str | None:
    if token == "-":
        return "a hyphen range needs one version on each side of ' - ', e.g. '1.2 - 2.3.4'"
    if ops in ("=>", "=<"):
        return f"'{ops}' is not an operator; did you mean '{ops[::-1]}'?"
    if len(ops) > 1 and ops not in ("<=", ">=", "~>"):
        return f"'{ops}' is not an operator; use one of <, <=, >, >=, =, ~, ^"
    if not rest:
        return f"'{ops}' has no version after it"
    return None


def _why_not_partial(token: str, rest: str) -> str | None:
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
    return None
