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

``Version`` and its grammar live in ``_semver``, npm desugaring in ``_npm`` and the
PEP 440 helpers in ``_pep440``; import them all from here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn, final

from plugbay.api.errors import RangeError, VersionError
from plugbay.model._npm import (
    _Comparator,
    _compile,
    _Compiled,
    _desugar,
    _format_set,
    _NpmSyntax,
    _read_npm,
    _why_not_npm,
)
from plugbay.model._pep440 import (
    _MEMO_SIZE,
    _has_pep440_marker,
    _pep440_empty,
    _pep440_representable,
    _pep440_version,
    _why_not_pep440,
)
from plugbay.model._semver import Version, _parse_version, parse_version

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

__all__ = ["ANY", "Range", "Syntax", "Version", "parse_range", "parse_version", "range_syntax"]

Syntax = Literal["npm", "pep440"]

_RANGE_HINT: Final = (
    "write an npm range such as '^1.2.3' or a PEP 440 specifier set such as '>=1.2,<2'"
)
_SYNTAXES: Final = ("npm", "pep440")
EMPTY_RANGE_FIX: Final = (
    "write the versions it works with, e.g. '>=1.2,<2' or '^1.2.3' (docs/version-ranges.md)"
)
"""What to write instead of a range no version is in (:attr:`Range.is_empty`)."""


@functools.lru_cache(maxsize=8192)
def range_syntax(text: str) -> Syntax:
    """The syntax ``Range.parse(text)`` reads ``text`` in (the rule in the module
    docstring): PEP 440 for a comma or a leading ``~=``, ``==``, ``!=``; PEP 440 for
    one comparator packaging accepts with no ``-`` in it; npm otherwise."""
    stripped = text.strip()
    if _has_pep440_marker(stripped):
        return "pep440"
    if "-" not in stripped and stripped[:1] in ("<", ">"):
        if any(c.isspace() for c in stripped.lstrip("<>=").strip()):
            # two comparators ('>=1 <2'): never one PEP 440 specifier (packaging's own
            # pattern has no blank inside a version), and packaging need not load for it
            return "npm"
        from packaging.specifiers import InvalidSpecifier, Specifier

        try:
            Specifier(stripped)
        except InvalidSpecifier:
            return "npm"
        return "pep440"
    return "npm"


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
        _check_arguments(text, syntax)
        stripped = text.strip()
        object.__setattr__(self, "text", stripped)
        if (syntax or range_syntax(stripped)) == "pep440":
            self._init_pep440(stripped)
        else:
            self._init_npm(stripped)

    def _init_pep440(self, stripped: str) -> None:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

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
        init = object.__setattr__
        init(self, "syntax", "pep440")
        init(self, "_spec", spec)
        init(self, "_pep_arbitrary", any(s.operator == "===" for s in spec))
        init(self, "_sets", None)
        init(self, "_memo", {})
        init(self, "_excl", ())
        init(self, "_incl", ())
        init(self, "_normalized", str(spec))

    def _init_npm(self, stripped: str) -> None:
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
        init = object.__setattr__
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
        if not isinstance(version, Version):
            version = _as_version(version)
        if self._spec is not None:
            return self._contains_pep440(version, include_prerelease)
        # one loop for both policies: with pre-releases included no set needs to name one
        pre: tuple[int | str, ...]
        if include_prerelease:
            compiled, pre = self._incl, ()
        else:
            compiled, pre = self._excl, version.prerelease
        key = version._prec
        for lower, lower_strict, upper, upper_strict, allowed in compiled:
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

    @property
    def is_empty(self) -> bool:
        """Whether no version at all is in the range, pre-releases included: ``>=2 <1``,
        ``>1.0.0 <=1.0.0``, ``>=2,<1``, ``<0.0.0``, ``==1.0,!=1.0``. Such a range is a
        mistake in its text, never a version missing from the host (for PEP 440, a
        sound test: a range some version is in is never called empty)."""
        if self._spec is not None:
            return _pep440_empty(self._spec)
        return not self._incl

    @property
    def why_empty(self) -> str | None:
        """Why no version is in the range (:attr:`is_empty`), naming its clauses as
        written (``'==1.0' and '!=1.0' ...``, ``'>=2' (from 2.0.0) is above '<1' (below
        1.0.0)``, each ``||`` alternative's); None when it is not empty."""
        if not self.is_empty:
            return None
        if self._spec is not None:
            from plugbay.model._pep440_room import pep440_why_empty

            return pep440_why_empty(self.text)
        from plugbay.model._npm_room import npm_why_empty

        return npm_why_empty(self.text)

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


def _as_version(version: object) -> Version:
    """Text read as a version; a VersionError for anything else."""
    if isinstance(version, str):
        return _parse_version(version)
    return Version.parse(version)  # type: ignore[arg-type]  # raises the VersionError


def _check_arguments(text: object, syntax: object) -> None:
    if syntax is not None and syntax not in _SYNTAXES:
        raise RangeError(
            f"{syntax!r} is not a range syntax: use 'npm', 'pep440' or None (decide from the text)",
            where=repr(syntax),
            hint=_RANGE_HINT,
        )
    if not isinstance(text, str):
        raise RangeError(
            f"{text!r} is not a version range: a range is text",
            where=repr(text),
            hint=_RANGE_HINT,
        )


@functools.lru_cache(maxsize=8192)
def _parse_range(text: str, syntax: Syntax | None) -> Range:
    return Range(text, syntax)


def parse_range(text: str, syntax: Syntax | None = None) -> Range:
    """Alias of :meth:`Range.parse`."""
    return Range.parse(text, syntax)


ANY: Final[Range] = Range.parse("*")
