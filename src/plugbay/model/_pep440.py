"""PEP 440 helpers: which SemVer versions ``packaging`` can test, and why a text is
not a PEP 440 specifier set. :class:`plugbay.model.versions.Range` uses them."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final

from plugbay.model._semver import Version

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version as PyVersion

# packaging is imported where a PEP 440 text or version is first met: a host whose
# manifests use npm ranges only (the bundled set) never loads it

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
    from packaging.version import InvalidVersion
    from packaging.version import Version as PyVersion

    try:
        return PyVersion(str(version))
    except InvalidVersion:  # build metadata that is not a valid local version, e.g. '+-x'
        return None


def _is_pep440_version(text: str) -> bool:
    from packaging.version import InvalidVersion
    from packaging.version import Version as PyVersion

    try:
        PyVersion(text)
    except InvalidVersion:
        return False
    return True


def _has_pep440_marker(text: str) -> bool:
    return "," in text or text.startswith(_PEP440_START)


def _why_not_pep440(text: str) -> str:
    from packaging.specifiers import InvalidSpecifier, Specifier

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


def _pep440_empty(spec: SpecifierSet) -> bool:
    """Whether no version at all is in the set: its bounds cross (``>=2,<1``;
    ``==1.*,>=2``; ``>1,<=1``), or its other rules leave nothing between them
    (``<0.0.0``, ``==1.0,!=1.0``, ``>1,<1.0.0.post0``): see
    :mod:`plugbay.model._pep440_room`, which never calls a set with room empty."""
    from plugbay.model._pep440_room import pep440_why_empty

    return pep440_why_empty(str(spec)) is not None


def _pep440_conflict(spec: SpecifierSet) -> tuple[str, str] | None:
    """Why the set is empty (:func:`_pep440_empty`): its clause that sets the highest
    lower bound and its clause that sets the lowest upper one, which leave no version
    between them (``('>=4', '<4')``); None when the set is not surely empty."""
    lowers: list[tuple[PyVersion, bool, str]] = []
    uppers: list[tuple[PyVersion, bool, str]] = []
    for clause in spec:
        for op, bound in _bounds(clause.operator, clause.version):
            if op in (">", ">="):
                lowers.append((bound, op == ">", str(clause)))
            elif op in ("<", "<="):
                uppers.append((bound, op == "<", str(clause)))
    if not lowers or not uppers:
        return None
    # (bound, strict): the highest lower bound, a strict one above an inclusive one at a
    # tie; the lowest upper bound, a strict one below an inclusive one
    low, low_strict, low_clause = max(lowers, key=lambda b: (b[0], b[1]))
    high, high_strict, high_clause = min(uppers, key=lambda u: (u[0], not u[1]))
    if low > high or (low == high and (low_strict or high_strict)):
        return low_clause, high_clause
    return None


def _bounds(op: str, text: str) -> list[tuple[str, PyVersion]]:
    """One clause as plain comparators (``>``, ``>=``, ``<``, ``<=``) it implies."""
    from packaging.version import Version as PyVersion

    if op in ("!=", "==="):
        return []
    if op == "==" and text.endswith(".*"):  # a prefix: [X.Y.dev0, X.(Y+1).dev0)
        prefix = PyVersion(text[:-2])
        return [
            (">=", _dev0(prefix.release, prefix.epoch)),
            ("<", _dev0((*prefix.release[:-1], prefix.release[-1] + 1), prefix.epoch)),
        ]
    version = PyVersion(text)
    if op == "~=":  # ~=X.Y.Z is >=X.Y.Z, ==X.Y.*
        head = version.release[:-1]
        return [(">=", version), ("<", _dev0((*head[:-1], head[-1] + 1), version.epoch))]
    if op == "==":  # a local label sorts right after its public version: that is the bound
        public = PyVersion(version.public)
        return [(">=", public), ("<=", public)]
    return [(op, version)]


def _dev0(release: tuple[int, ...], epoch: int) -> PyVersion:
    """The lowest version of a release prefix (its first dev release)."""
    from packaging.version import Version as PyVersion

    return PyVersion(f"{epoch}!{'.'.join(map(str, release))}.dev0")
