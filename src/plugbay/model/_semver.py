"""SemVer 2.0.0 versions: :class:`Version`, its grammar and :func:`parse_version`.

Re-exported by :mod:`plugbay.model.versions`, which is where callers import them from.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final, NoReturn, final

from plugbay.api.errors import VersionError

# --------------------------------------------------------------------------- grammar

_NUM: Final = r"(?:0|[1-9][0-9]*)"
_PRE_ID: Final = rf"(?:{_NUM}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID: Final = r"[0-9A-Za-z-]+"
_PRE: Final = rf"{_PRE_ID}(?:\.{_PRE_ID})*"
_BUILD: Final = rf"{_BUILD_ID}(?:\.{_BUILD_ID})*"
_SEMVER_RE: Final = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})(?:-({_PRE}))?(?:\+({_BUILD}))?", re.ASCII
)

_VERSION_HINT: Final = (
    "write MAJOR.MINOR.PATCH, e.g. '1.2.0'; pre-release and build go after '-' and '+': "
    "'1.2.0-rc.1+build.5'"
)


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

    __slots__ = (
        "_hash", "_key", "_prec", "_text", "build", "major", "minor", "patch", "prerelease",
    )  # fmt: skip

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...]
    build: tuple[str, ...]
    _prec: tuple[Any, ...]
    _key: tuple[Any, ...]
    _hash: int
    _text: str  # str(self), made at the first ask

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
        try:  # made once, at the first ask (every log record and history line asks)
            return self._text
        except AttributeError:
            pass
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(map(str, self.prerelease))
        if self.build:
            text += "+" + ".".join(self.build)
        object.__setattr__(self, "_text", text)
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
        return _why_not_identifiers(parts, pre, "-" in main, rest, "+" in text)
    return None


def _why_not_identifiers(
    numbers: list[str], pre: str, has_dash: bool, build: str, has_plus: bool
) -> str:
    """What is wrong with a version whose three parts are digits."""
    if any(len(p) > 1 and p[0] == "0" for p in numbers):
        fixed = ".".join(str(int(p)) for p in numbers)
        return f"numbers may not have leading zeros ({fixed!r})"
    if has_dash and not pre:
        return "the pre-release after '-' is empty"
    why_pre = _why_not_prerelease(pre.split(".") if pre else [])
    if why_pre is not None:
        return why_pre
    if has_plus and not build:
        return "the build metadata after '+' is empty"
    if build and "" in build.split("."):
        return "a build identifier is empty (two dots in a row, or a trailing dot)"
    return "identifiers may only use ASCII letters, digits and '-'"


def _why_not_prerelease(identifiers: list[str]) -> str | None:
    for ident in identifiers:
        if not ident:
            return "a pre-release identifier is empty (two dots in a row, or a trailing dot)"
        if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
            return f"the numeric pre-release identifier '{ident}' has a leading zero"
    return None
