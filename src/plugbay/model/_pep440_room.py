"""Whether a PEP 440 specifier set leaves room for any version at all, and why not.

``packaging`` has no emptiness test, so this one is built to be sound: a set is called
empty only when no version can be in it, pre-releases and local versions included.

Every clause but ``===`` decides a version by comparing it, its public part and its
base (epoch and release) with the clause's own version (for a prefix, ``==1.*`` or
``!=1.*``, with its bounds ``1.dev0`` and ``2.dev0``), plus whether it is a pre-, post-
or local release. So versions whose base is none of the clauses' bases act
alike between two consecutive bases, and one of them stands for all; versions on a
clause's base are tried with each pre, post, dev and local part that a clause names,
that part plus one, and the least one. A set none of these is in holds no version:
``<0.0.0`` (below 0 there are only 0's pre-releases, which ``<0`` leaves out; the
least version is ``0.dev0``), ``==1.0,!=1.0``, ``>1,<1.0.0.post0``. ``===`` compares
text: two of them naming different texts leave no room; otherwise the one text it
names is the only one the set can admit, so the set is empty when that text is not a
version (``===foo,>=1``: the other clauses admit versions only) or the version it
spells is left out by the other clauses (``===1.0,>=2``).
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING, Final

from plugbay.model._pep440 import _bounds, _pep440_conflict

if TYPE_CHECKING:
    from packaging.specifiers import Specifier
    from packaging.version import Version as PyVersion

__all__ = ["pep440_why_empty"]

_LEAST: Final = "0.dev0"  # the least version PEP 440 orders
_Base = tuple[int, tuple[int, ...]]


def pep440_why_empty(text: str) -> str | None:
    """Why no version at all is in the PEP 440 range ``text`` (valid), in a clause naming
    its clauses as written, or None when some version is (or may be: the test never
    calls a set with room empty)."""
    return _why_empty(text.strip())


@functools.lru_cache(maxsize=1024)
def _why_empty(text: str) -> str | None:
    from packaging.specifiers import Specifier, SpecifierSet

    spec = SpecifierSet(text)
    written = [Specifier(c.strip()) for c in text.split(",") if c.strip()]
    conflict = _pep440_conflict(spec)
    if conflict is not None:
        low, high = conflict
        return f"'{low}' and '{high}' leave no version between them"
    arbitrary = sorted({c.version.lower() for c in spec if c.operator == "==="})
    if len(arbitrary) > 1:
        named = " and ".join(f"'==={a}'" for a in arbitrary)
        return f"{named} name different versions, and a version has one text"
    others = [c for c in written if c.operator != "==="]
    if not others:
        return None
    if arbitrary:  # the one version that can be in it is the one with that text
        return _why_not_arbitrary(arbitrary[0], others)
    if _has_room(others):
        return None
    return _why_no_room(others)


def _why_not_arbitrary(text: str, others: list[Specifier]) -> str | None:
    """Why the version ``===text`` names is left out by the ``others``, or None."""
    if not _is_version(text):  # only '===' compares text; every other clause orders versions
        return (
            f"'==={text}' admits only the text '{text}', which is not a PEP 440 version, "
            f"and {_joined(others)} {'admits' if len(others) == 1 else 'admit'} only versions"
        )
    if all(c.contains(text, prereleases=True) for c in others):
        return None
    verb = "leaves" if len(others) == 1 else "leave"
    return f"'==={text}' is the one version it admits, and {_joined(others)} {verb} it out"


def _why_no_room(others: list[Specifier]) -> str:
    if len(others) == 1 and others[0].operator == "<":
        bound = others[0].version
        if _is_least(bound):
            return f"no version is below {bound}, the least version there is"
        return (
            f"below {bound} there are only {bound}'s own pre-releases, which '<{bound}' "
            f"leaves out (the least version is {_LEAST})"
        )
    return f"no version is in {_joined(others)} at once"


def _joined(clauses: list[Specifier]) -> str:
    return " and ".join(f"'{c}'" for c in clauses)


def _is_version(text: str) -> bool:
    from packaging.version import InvalidVersion
    from packaging.version import Version as PyVersion

    try:
        PyVersion(text)
    except InvalidVersion:
        return False
    return True


def _is_least(text: str) -> bool:
    from packaging.version import Version as PyVersion

    return PyVersion(text) == PyVersion(_LEAST)


def _has_room(clauses: list[Specifier]) -> bool:
    from packaging.version import Version as PyVersion

    anchors = [PyVersion(c.version.removesuffix(".*")) for c in clauses]
    # '!=' has the bounds of its '==': '!=1.*' changes its answer at 1.dev0 and 2.dev0
    ops = [("==" if c.operator == "!=" else c.operator, c.version) for c in clauses]
    anchors += [bound for op, text in ops for _, bound in _bounds(op, text)]
    return any(all(c.contains(w, prereleases=True) for c in clauses) for w in _witnesses(anchors))


def _witnesses(anchors: list[PyVersion]) -> list[PyVersion]:
    """Versions that stand for every version, as far as clauses on ``anchors`` can tell."""
    from packaging.version import Version as PyVersion

    by_base: dict[_Base, list[PyVersion]] = {(0, (0,)): []}
    for a in anchors:
        by_base.setdefault((a.epoch, _trimmed(a.release)), []).append(a)
    bases = sorted(by_base)
    texts = [_text(*_between(x, y)) for x, y in itertools.pairwise(bases)]
    top_epoch, top = bases[-1]
    texts.append(_text(top_epoch, (top[0] + 1,)))
    for base, members in by_base.items():
        texts += _family(base, members)
    return [PyVersion(t) for t in dict.fromkeys(texts)]


def _family(base: _Base, members: list[PyVersion]) -> list[str]:
    """Versions on ``base``: each pre, post, dev and local part its anchors name, that
    part plus one, and none or the least, in every combination."""
    pres: set[tuple[str, int] | None] = {None, ("a", 0)}
    posts: set[int | None] = {None, 0}
    devs: set[int | None] = {None, 0}
    locals_: set[str | None] = {None, "0"}
    for m in members:
        if m.pre is not None:
            pres |= {m.pre, (m.pre[0], m.pre[1] + 1)}
        if m.post is not None:
            posts |= {m.post, m.post + 1}
        if m.dev is not None:
            devs |= {m.dev, m.dev + 1}
        locals_.add(m.local)
    out = []
    for pre, post, dev, local in itertools.product(pres, posts, devs, locals_):
        text = _text(*base)
        text += f"{pre[0]}{pre[1]}" if pre is not None else ""
        text += f".post{post}" if post is not None else ""
        text += f".dev{dev}" if dev is not None else ""
        text += f"+{local}" if local is not None else ""
        out.append(text)
    return out


def _between(low: _Base, high: _Base) -> _Base:
    """A base above ``low`` and below ``high`` (``low < high``): ``low`` padded with
    zeros to the longer length, then one more part, 1."""
    epoch, release = low
    width = max(len(release), len(high[1]))
    return epoch, (*release, *[0] * (width - len(release)), 1)


def _trimmed(release: tuple[int, ...]) -> tuple[int, ...]:
    out = list(release)
    while len(out) > 1 and out[-1] == 0:
        out.pop()
    return tuple(out)


def _text(epoch: int, release: tuple[int, ...]) -> str:
    return f"{epoch}!{'.'.join(map(str, release))}"
