"""Range spellings that npm and PEP 440 read differently, and what to write instead.

A lone comparator such as ``>1.2`` is valid in both syntaxes. plugbay reads it by
one rule (:func:`plugbay.model.versions.range_syntax`), but a reader who knows the other
syntax may not: npm's ``>1.2`` is ``>=1.3.0``, PEP 440's admits ``1.2.1``. This
module finds such spellings by asking both readings about the versions around the
comparator's bound (its neighbours, their pre-releases with a PEP 440 spelling,
build metadata), with and without pre-releases allowed, and proposes spellings
that mean the same whichever way they are read. ``plugbay validate`` warns with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from plugbay.api.errors import RangeError
from plugbay.model.versions import Range, Syntax, Version, range_syntax

__all__ = ["Ambiguity", "ambiguity"]

_LONE: Final = re.compile(
    r"(<=|>=|<|>)\s*v?(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:\.(0|[1-9][0-9]*))?"
    r"(?:-([0-9A-Za-z.-]+))?",
    re.ASCII,
)
_PRE_PROBES: Final[tuple[tuple[int | str, ...], ...]] = (
    (),
    ("rc", 1),
    ("rc", 0),
    ("rc", 2),
    ("beta", 1),
    ("alpha", 0),
)
_NAMES: Final = {"npm": "npm", "pep440": "PEP 440"}


@dataclass(frozen=True)
class Ambiguity:
    """A range whose npm and PEP 440 readings disagree."""

    text: str
    read_as: Syntax
    """The syntax plugbay reads the text in."""
    version: Version
    """A version the two readings disagree about."""
    include_prerelease: bool
    """Whether they disagree only when pre-releases are allowed (host ranges)."""
    contained: bool
    """Whether ``version`` is in the range as plugbay reads it."""
    same: str | None
    """A spelling of plugbay's reading that both syntaxes read alike, if one is needed."""
    other: str | None
    """A spelling of the other syntax's reading that cannot be misread, if there is one."""

    @property
    def message(self) -> str:
        other_syntax = "PEP 440" if self.read_as == "npm" else "npm"
        policy = " when pre-releases are allowed" if self.include_prerelease else ""
        is_in = "is in it" if self.contained else "is not in it"
        return (
            f"range '{self.text}' means different things in npm and PEP 440 syntax: plugbay "
            f"reads it as {_NAMES[self.read_as]}, so {self.version} {is_in}{policy}; read as "
            f"{other_syntax} it would {'not ' if self.contained else ''}be"
        )

    @property
    def hint(self) -> str:
        parts: list[str] = []
        if self.same is not None:
            parts.append(f"write '{self.same}' to keep plugbay's meaning unmistakably")
        elif self.read_as == "npm":
            parts.append("the SemVer pre-release after '-' makes it npm")
        if self.other is not None:
            other = "PEP 440" if self.read_as == "npm" else "npm"
            parts.append(f"write '{self.other}' for the {other} meaning")
        return "; ".join(parts) + " (docs/version-ranges.md)"


def ambiguity(text: str) -> Ambiguity | None:
    """How ``text`` reads differently in the two syntaxes, or None if it does not."""
    stripped = text.strip()
    m = _LONE.fullmatch(stripped)
    if m is None:
        return None
    try:
        npm = Range.parse(stripped, "npm")
        pep = Range.parse(stripped, "pep440")
    except RangeError:
        return None  # valid in one syntax only
    _, major, minor, patch, pre = m.groups()
    probes = _probes(int(major), int(minor or 0), int(patch or 0), pre)
    found = _disagreement(npm, pep, probes)
    if found is None:
        return None
    version, include = found
    syntax = range_syntax(stripped)
    chosen = npm if syntax == "npm" else pep
    # a hyphen makes the text npm by the rule already; the PEP 440 reading is what to offer
    same = None if syntax == "npm" else _spelling(_pep_candidates(m, stripped), pep, probes)
    if syntax == "npm":
        other = _spelling(_pep_candidates(m, stripped), pep, probes)
    else:
        other = _spelling(_npm_candidates(m, npm), npm, probes)
    return Ambiguity(
        stripped,
        syntax,
        version,
        include,
        chosen.contains(version, include_prerelease=include),
        same,
        other,
    )


def _probes(major: int, minor: int, patch: int, pre: str | None) -> list[Version]:
    releases = {
        (a, b, c)
        for a in (major - 1, major, major + 1)
        for b in (0, minor - 1, minor, minor + 1)
        for c in (0, patch - 1, patch, patch + 1)
        if min(a, b, c) >= 0
    }
    # npm has read the range, so its pre-release is valid SemVer
    extra = [Version.parse(f"0.0.0-{pre}").prerelease] if pre else []
    out = [Version(*release, p) for release in sorted(releases) for p in (*_PRE_PROBES, *extra)]
    out.append(Version(major, minor, patch, (), ("b",)))
    return out


def _disagreement(a: Range, b: Range, probes: list[Version]) -> tuple[Version, bool] | None:
    for include in (False, True):
        for v in probes:
            if a.contains(v, include_prerelease=include) != b.contains(
                v, include_prerelease=include
            ):
                return v, include
    return None


def _alike(text: str, meaning: Range, probes: list[Version]) -> bool:
    """``text`` reads as ``meaning`` by plugbay's rule and cannot be misread."""
    try:
        read = Range.parse(text)
    except RangeError:
        return False
    if _disagreement(read, meaning, probes) is not None:
        return False
    other: Syntax = "npm" if read.syntax == "pep440" else "pep440"
    try:
        misread = Range.parse(text, other)
    except RangeError:
        return True  # the other syntax refuses it: no one can misread it
    return _disagreement(read, misread, probes) is None


def _spelling(candidates: list[str], meaning: Range, probes: list[Version]) -> str | None:
    return next((c for c in candidates if _alike(c, meaning, probes)), None)


def _pep_pre(pre: str | None) -> str:
    if not pre:
        return ""
    ids = pre.split(".")
    if len(ids) == 1 and ids[0].isdigit():
        return f".post{ids[0]}"  # what packaging reads '-0' as
    tag = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "rc": "rc", "c": "rc"}.get(ids[0].lower())
    if tag is None or len(ids) > 2 or (len(ids) == 2 and not ids[1].isdigit()):
        return "-" + pre  # no PEP 440 spelling: leave it, the check above refuses it
    return tag + (ids[1] if len(ids) == 2 else "0")


def _pep_candidates(m: re.Match[str], text: str) -> list[str]:
    op, major, minor, patch, pre = m.groups()
    numbers = [major, minor or "0", patch or "0"]
    trimmed = list(numbers)
    while len(trimmed) > 1 and trimmed[-1] == "0":
        trimmed.pop()
    suffix = _pep_pre(pre)
    return [
        f"{op}{'.'.join(numbers)}{suffix}",
        f"{op}{'.'.join(trimmed)}{suffix}",
        f"{text},",
    ]


def _npm_candidates(m: re.Match[str], npm: Range) -> list[str]:
    op, major, minor, patch, _ = m.groups()
    out: list[str] = []
    if patch is None:
        out.append(f"{op}{major}.{minor if minor is not None else 'x'}.x")
    out.append(npm.desugared())
    out.append(npm.desugared(include_prerelease=True))
    return out
