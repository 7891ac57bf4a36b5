"""Why an npm range holds no version, in its comparators as written.

An npm comparator set is empty when its highest lower bound is above its lowest upper
bound (or on it, one of the two leaving it out): ``>=2 <1``, ``>1.0.0 <=1.0.0``,
``^2 <1``, ``1.x >=2``; or, both strict, nothing lies between them (``>1.0.0
<1.0.1-0``: the least version above 1.0.0 is 1.0.1-0). Each written comparator is desugared alone, as
:class:`~plugbay.model.versions.Range` desugars the set (pre-releases included, as its
emptiness test reads it), so the two that cross are named as the author wrote them,
each with the bound it stands for when the text does not show it (``'^2' (from
2.0.0)``). A range of several ``||`` alternatives is empty when each is, and each says
why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugbay.model._npm import _Alternative, _bare, _Comparator, _desugar, _next_key, _read_npm

if TYPE_CHECKING:
    from plugbay.model._semver import Version

__all__ = ["npm_why_empty"]

# one written comparator (or hyphen range), and what it desugars to (None: nothing)
_Piece = tuple[str, list[_Comparator] | None]
# a bound of a set: its comparator, and the written one it comes from
_Bound = tuple[str, "Version", str]


def npm_why_empty(text: str) -> str:
    """Why no version is in the npm range ``text`` (valid, and empty), naming the
    comparators that cross as written, for each ``||`` alternative."""
    alternatives, normalized = _read_npm(text)
    written = normalized.split(" || ")
    reasons = [_why_set(alt, w) for alt, w in zip(alternatives, written, strict=True)]
    if len(reasons) == 1:
        return reasons[0]
    each = "; ".join(f"in '{w}', {why}" for w, why in zip(written, reasons, strict=True))
    return f"each of its alternatives is empty: {each}"


def _why_set(alternative: _Alternative, written: str) -> str:
    if isinstance(alternative, tuple):  # a hyphen range: one piece, both ends in it
        pieces: list[_Piece] = [(written, _desugar([alternative], inc=True)[0])]
    else:
        words = written.split(" ")
        pieces = [
            (word, _desugar([[c]], inc=True)[0]) for word, c in zip(words, alternative, strict=True)
        ]
    for word, comparators in pieces:
        if comparators is None:
            return (
                f"'{word}' admits no version: npm reads it as '<0.0.0-0', and 0.0.0-0 is "
                "the least version there is"
            )
    low, high = _lowest_upper_and_highest_lower(pieces)
    if low is None or high is None:
        return "its comparators leave no version between them"
    if low[0] == ">" and high[0] == "<" and high[1]._prec == _next_key(low[1]._prec):
        return (
            f"{_shown(low, _from(low))} and {_shown(high, _to(high))} leave no version "
            f"between them: the least version above {_bare(low[1])} is {_bare(high[1])}"
        )
    if low[2] == high[2]:
        return f"'{low[2]}' starts above where it ends"
    return f"{_shown(low, _from(low))} is above {_shown(high, _to(high))}"


def _lowest_upper_and_highest_lower(pieces: list[_Piece]) -> tuple[_Bound | None, _Bound | None]:
    """The set's highest lower bound and lowest upper bound, each with the written
    comparator it comes from (the stricter of two on one version, as ``_compile``)."""
    low: _Bound | None = None
    high: _Bound | None = None
    for word, comparators in pieces:
        for op, bound in comparators or ():
            if op in (">", ">=", "=") and (
                low is None
                or bound._prec > low[1]._prec
                or (bound._prec == low[1]._prec and op == ">")
            ):
                low = (op, bound, word)
            if op in ("<", "<=", "=") and (
                high is None
                or bound._prec < high[1]._prec
                or (bound._prec == high[1]._prec and op == "<")
            ):
                high = (op, bound, word)
    return low, high


def _shown(bound: _Bound, gloss: str) -> str:
    """The written comparator, with the bound it stands for when its text does not say it."""
    op, version, word = bound
    plain = {f"{op}{_bare(version)}"} | ({_bare(version)} if op == "=" else set())
    return f"'{word}'" if word in plain else f"'{word}' ({gloss})"


def _from(bound: _Bound) -> str:
    op, version, _ = bound
    return {">": "above", ">=": "from", "=": "at"}[op] + " " + _version(version)


def _to(bound: _Bound) -> str:
    op, version, _ = bound
    return {"<": "below", "<=": "up to", "=": "at"}[op] + " " + _version(version)


def _version(version: Version) -> str:
    """``2.0.0`` for ``2.0.0-0``: the least pre-release stands for the release in words."""
    text = _bare(version)
    return text.removesuffix("-0") if version.prerelease == (0,) else text
