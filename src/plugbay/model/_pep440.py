"""PEP 440 helpers: which SemVer versions ``packaging`` can test, and why a text is
not a PEP 440 specifier set. :class:`plugbay.model.versions.Range` uses them."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final

from plugbay.model._semver import Version

if TYPE_CHECKING:
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
