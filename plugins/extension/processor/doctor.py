"""ELIZA running Weizenbaum's DOCTOR script, as in CACM 9(1), January 1966.

The script (``doctor_script.py``) is kept as the S-expression text printed in
the paper's appendix and read here; this module is the interpreter. What it
does for one input text, in the paper's own terms:

1. *Reading.* The text is upper-cased and split into words. ``.`` and ``,`` are
   words of their own and, with ``BUT``, are delimiters. (The paper names only
   the period and the comma; the MAD-SLIP source found in Weizenbaum's papers
   in 2021 also tests for ``BUT``, and the paper's sample conversation needs
   it.) ``?`` and ``!`` are read as periods; letters with accents lose them;
   other characters the IBM 7094's six-bit code could not hold become spaces.

2. *Scanning.* Words are scanned left to right. A word that heads a script
   entry with ``=`` is replaced (``I`` → ``YOU``, ``DONT`` → ``DON'T`` …). A
   word whose entry has transformations or a link is a keyword: it goes on top
   of the *keystack* if its rank (precedence) beats every keyword seen so far,
   else to the bottom. At a delimiter, if a keyword has been found the rest of
   the text is dropped; otherwise the words before it are dropped and the scan
   goes on -- so the first clause that holds a keyword is the one transformed.

3. *Transforming.* The top keyword is popped and its decomposition rules tried
   in order: ``0`` matches any number of words, ``n`` exactly n words,
   ``(*A B C)`` any one of the words, ``(/TAG)`` a word whose ``DLIST`` carries
   the tag. The first rule that matches is reassembled with its *next*
   reassembly rule: they are used in turn, cyclically, with no randomness.
   ``n`` in a reassembly stands for the n-th part of the decomposition.
   ``(=KEY)`` continues with KEY's rules, ``(NEWKEY)`` with the next keyword
   on the keystack, ``(PRE (…) (=KEY))`` rewrites the text and then continues
   with KEY; a keyword entry that is only ``(=KEY)`` always continues with KEY.

4. *MEMORY.* Whenever ``MY`` (the script's MEMORY keyword) is the keyword being
   processed, one of the four MEMORY transformations is applied to a copy of the
   text and queued. Which one is not random, as the paper says, but
   ``HASH(last word, 2)`` as in the MAD-SLIP source: the middle two bits of the
   square of the last six-character cell of the last word in BCD. A text with no
   keyword answers with the oldest queued memory when LIMIT -- a counter that
   runs 1, 2, 3, 4, 1 … over inputs, the paper's "certain counting mechanism" --
   is 4; otherwise, and when the keystack runs dry, the ``NONE`` entry answers.

5. *Script errors.* When a keyword's decomposition rules all fail (``CAN`` has
   no catch-all rule, so "Can we talk?" does this), ELIZA answers with one of
   four messages hard-coded in the MAD-SLIP program, chosen by LIMIT.

The alternatives list ``(*…)`` is matched as the original appears to match it,
on six-character cells: the first six letters of a word match a six-character
cell of an alternative, so ``DEPRESSION`` matches ``DEPRESSED`` (evidence from
the 1965 pilot-study transcripts; see ``_AnyOf``).

Where this necessarily departs from 1966: the input alphabet (step 1) is a
modern reading, since the teletype could not type what it maps; at most
``_MAX_STEPS`` keyword transformations are tried per input (the script needs a
handful; a text of a thousand NEWKEY keywords then gets a NONE answer); and the
matcher computes YMATCH's answer without backtracking, so a 10,000-character
input costs milliseconds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from .doctor_script import DOCTOR_SCRIPT

__all__ = ["Eliza"]


class ScriptError(ValueError):
    """The script text is not a well-formed ELIZA script."""


# -- the script's parts -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AnyOf:
    """``(*SAD UNHAPPY DEPRESSED)``: one word out of a list.

    SLIP keeps a word in cells of six characters. The pilot-study transcripts of
    1965 show ELIZA taking WONDER for WONDERFUL and D for ASHAMED, which is what
    comparing the word's first cell with every cell of every alternative gives;
    ``cells`` holds those cells.
    """

    words: tuple[str, ...]
    cells: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Tagged:
    """``(/FAMILY)`` or ``(/NOUN FAMILY)``: a word carrying one of the tags."""

    tags: tuple[str, ...]


_Element: TypeAlias = int | str | _AnyOf | _Tagged


@dataclass(frozen=True, slots=True)
class _Text:
    """A reassembly rule proper: words, and numbers naming decomposition parts."""

    items: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Link:
    """``(=KEY)``: continue with another keyword's rules."""

    keyword: str


@dataclass(frozen=True, slots=True)
class _NewKey:
    """``(NEWKEY)``: continue with the next keyword on the keystack."""


@dataclass(frozen=True, slots=True)
class _Pre:
    """``(PRE (I ARE 3) (=YOU))``: rewrite the text, then continue with KEY."""

    text: _Text
    keyword: str


_Reassembly: TypeAlias = _Text | _Link | _NewKey | _Pre


@dataclass(frozen=True, slots=True)
class _Transformation:
    decomposition: tuple[_Element, ...]
    reassemblies: tuple[_Reassembly, ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    """One keyword list of the script."""

    word: str
    substitute: str | None
    rank: int
    tags: tuple[str, ...]
    transformations: tuple[_Transformation, ...]
    link: str | None

    @property
    def is_keyword(self) -> bool:
        """Whether the word goes on the keystack (entries like ``(DONT = DON'T)`` do not)."""
        return bool(self.transformations) or self.link is not None


@dataclass(frozen=True, slots=True)
class _Script:
    greeting: str
    entries: Mapping[str, _Entry]
    none: _Entry
    memory_keyword: str
    memory: tuple[_Transformation, ...]  # exactly four, one _Text each
    tags: Mapping[str, frozenset[str]]


# -- reading the script ---------------------------------------------------------------

_SExp: TypeAlias = "str | list[_SExp]"


def _read(text: str) -> list[_SExp]:
    stack: list[list[_SExp]] = [[]]
    for token in re.findall(r"[()]|[^\s()]+", text):
        if token == "(":
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                raise ScriptError("unbalanced ')' in script")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    if len(stack) != 1:
        raise ScriptError("unbalanced '(' in script")
    return stack[0]


def _atoms(item: _SExp, what: str) -> list[str]:
    if not isinstance(item, list) or not all(isinstance(a, str) for a in item):
        raise ScriptError(f"{what} must be a list of words, got {item!r}")
    return [a for a in item if isinstance(a, str)]


def _as_link(item: _SExp) -> str | None:
    """``(=KEY)`` or ``(= KEY)`` → KEY; anything else → None."""
    if not isinstance(item, list) or not item or not all(isinstance(a, str) for a in item):
        return None
    words = [a for a in item if isinstance(a, str)]
    if words[0] == "=" and len(words) == 2:
        return words[1]
    if words[0].startswith("=") and len(words[0]) > 1 and len(words) == 1:
        return words[0][1:]
    return None


def _marked(words: list[str], mark: str) -> list[str]:
    """``['*SAD', 'HAPPY']`` or ``['*', 'SAD', 'HAPPY']`` → ``['SAD', 'HAPPY']``."""
    first = words[0][len(mark) :]
    return ([first] if first else []) + words[1:]


def _decomposition(item: _SExp) -> tuple[_Element, ...]:
    if not isinstance(item, list) or not item:
        raise ScriptError(f"a decomposition rule must be a non-empty list, got {item!r}")
    elements: list[_Element] = []
    for part in item:
        if isinstance(part, str):
            elements.append(int(part) if part.isdigit() else part)
            continue
        words = _atoms(part, "a word list in a decomposition rule")
        mark = words[0][:1] if words else ""
        if mark not in ("*", "/") or not _marked(words, mark):
            raise ScriptError(
                f"expected (*WORD ...) or (/TAG ...) in a decomposition, got {part!r}"
            )
        listed = tuple(_marked(words, mark))
        if mark == "*":
            cells = frozenset(w[i : i + 6] for w in listed for i in range(0, len(w), 6))
            elements.append(_AnyOf(listed, cells))
        else:
            elements.append(_Tagged(listed))
    return tuple(elements)


def _text(words: list[str], parts: int) -> _Text:
    items: list[str | int] = []
    for word in words:
        if word.isdigit():
            number = int(word)
            if not 1 <= number <= parts:
                raise ScriptError(f"reassembly {' '.join(words)!r} names part {number} of {parts}")
            items.append(number)
        else:
            items.append(word)
    return _Text(tuple(items))


def _reassembly(item: _SExp, parts: int) -> _Reassembly:
    link = _as_link(item)
    if link is not None:
        return _Link(link)
    if not isinstance(item, list) or not item:
        raise ScriptError(f"a reassembly rule must be a non-empty list, got {item!r}")
    if item == ["NEWKEY"]:
        return _NewKey()
    if item[0] == "PRE":
        target = _as_link(item[2]) if len(item) == 3 else None
        if target is None:
            raise ScriptError(f"PRE needs (PRE (reassembly) (=KEY)), got {item!r}")
        return _Pre(_text(_atoms(item[1], "PRE's reassembly"), parts), target)
    return _text(_atoms(item, "a reassembly rule"), parts)


def _transformation(item: list[_SExp]) -> _Transformation:
    decomposition = _decomposition(item[0])
    reassemblies = tuple(_reassembly(r, len(decomposition)) for r in item[1:])
    if not reassemblies:
        raise ScriptError(f"decomposition rule {item[0]!r} has no reassembly rule")
    return _Transformation(decomposition, reassemblies)


def _entry(item: list[_SExp]) -> _Entry:
    word, rest = item[0], item[1:]
    if not isinstance(word, str):
        raise ScriptError(f"a script entry must start with its keyword, got {item!r}")
    i = 0
    substitute: str | None = None
    if i + 1 < len(rest) and rest[i] == "=" and isinstance(rest[i + 1], str):
        substitute = str(rest[i + 1])
        i += 2
    tags: tuple[str, ...] = ()
    if i + 1 < len(rest) and rest[i] == "DLIST":
        tag_words = _atoms(rest[i + 1], "DLIST")
        tags = tuple(_marked(tag_words, "/")) if tag_words else ()
        i += 2
    rank = 0
    if i < len(rest) and isinstance(rest[i], str) and str(rest[i]).isdigit():
        rank = int(str(rest[i]))
        i += 1
    transformations: list[_Transformation] = []
    link: str | None = None
    for part in rest[i:]:
        target = _as_link(part)
        if target is not None and link is None:
            link = target
        elif isinstance(part, list) and part and isinstance(part[0], list) and link is None:
            transformations.append(_transformation(part))
        else:
            raise ScriptError(f"unexpected {part!r} in the entry for {word}")
    return _Entry(word, substitute, rank, tags, tuple(transformations), link)


def _memory(item: list[_SExp]) -> tuple[str, tuple[_Transformation, ...]]:
    keyword = item[1] if len(item) > 1 else None
    if not isinstance(keyword, str):
        raise ScriptError("MEMORY needs a keyword: (MEMORY MY (...) ...)")
    rules: list[_Transformation] = []
    for part in item[2:]:
        words = _atoms(part, "a MEMORY transformation")
        if words.count("=") != 1:
            raise ScriptError(
                f"a MEMORY transformation is (decomposition = reassembly), got {part!r}"
            )
        cut = words.index("=")
        decomposition = _decomposition(list(words[:cut]))
        rules.append(_Transformation(decomposition, (_text(words[cut + 1 :], len(decomposition)),)))
    if len(rules) != 4:
        # "The current version of ELIZA requires that one keyword be associated with
        # MEMORY and that exactly four transformations accompany that word."
        raise ScriptError(f"MEMORY needs exactly four transformations, got {len(rules)}")
    return keyword, tuple(rules)


def _parse(text: str) -> _Script:
    opening = re.match(r"\s*\(([^()]*)\)", text)
    items = _read(text)
    if opening is None or not items or not isinstance(items[0], list):
        raise ScriptError("a script starts with its opening remark, e.g. (HOW DO YOU DO.)")
    body = items[1:]
    if body and body[0] == "START":
        body = body[1:]
    entries: dict[str, _Entry] = {}
    none: _Entry | None = None
    memory: tuple[str, tuple[_Transformation, ...]] | None = None
    for item in body:
        if item == []:
            break  # "()" ends the script
        if not isinstance(item, list):
            raise ScriptError(f"unexpected {item!r} between script entries")
        if item[0] == "MEMORY":
            memory = _memory(item)
        elif item[0] == "NONE":
            none = _entry(item)
        else:
            entry = _entry(item)
            entries[entry.word] = entry
    if none is None or not none.transformations:
        raise ScriptError("the script has no NONE entry")
    if memory is None:
        raise ScriptError("the script has no MEMORY entry")
    if memory[0] not in entries:
        raise ScriptError(f"the MEMORY keyword {memory[0]} is not a keyword of the script")
    for entry in [*entries.values(), none]:
        targets = [entry.link] + [
            r.keyword
            for t in entry.transformations
            for r in t.reassemblies
            if isinstance(r, _Link | _Pre)
        ]
        for target in targets:
            if target is not None and target not in entries:
                raise ScriptError(f"{entry.word} refers to {target}, which has no entry")
    tags: dict[str, set[str]] = {}
    for entry in entries.values():
        for tag in entry.tags:
            tags.setdefault(tag, set()).add(entry.word)
    return _Script(
        greeting=opening.group(1).strip(),
        entries=entries,
        none=none,
        memory_keyword=memory[0],
        memory=memory[1],
        tags={tag: frozenset(words) for tag, words in tags.items()},
    )


_SCRIPT: Final = _parse(DOCTOR_SCRIPT)

# -- reading the user's text -----------------------------------------------------------

#: The IBM 7090/7094 BCD ("Hollerith") code: character -> six-bit code.
_BCD: Final[Mapping[str, int]] = {
    char: code
    for code, char in enumerate(
        "0123456789\0='\0\0\0+ABCDEFGHI\0.)\0\0\0-JKLMNOPQR\0$*\0\0\0 /STUVWXYZ\0,(\0\0\0"
    )
    if char != "\0"
}
_APOSTROPHES: Final = frozenset("\u2018\u2019\u201a\u201b\u2032\u02bc`")
_DELIMITERS: Final = frozenset({".", ",", "BUT"})
#: The messages the MAD-SLIP program prints when no decomposition rule of a keyword
#: matches, chosen by LIMIT (1-4).
_NOMATCH: Final = ("PLEASE CONTINUE", "HMMM", "GO ON , PLEASE", "I SEE")
#: Keyword transformations tried for one input before giving up on the keystack; the
#: DOCTOR script needs a handful, this only bounds pathological inputs.
_MAX_STEPS: Final = 32


def _words(text: str) -> list[str]:
    """``"Well, my boyfriend made me come here."`` → ``WELL , MY BOYFRIEND … HERE .``"""
    chars: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char):
            continue
        if char in _APOSTROPHES:
            chars.append("'")
        elif char in "?!":
            chars.append(".")
        else:
            upper = char.upper()
            chars.append(upper if all(c in _BCD for c in upper) else " ")
    return re.findall(r"[.,]|[^ .,]+", "".join(chars))


def _last_cell(word: str) -> int:
    """The last six-character SLIP cell of ``word``, blank-padded, as a 36-bit BCD word."""
    cell = word[(max(len(word), 1) - 1) // 6 * 6 :].ljust(6)
    value = 0
    for char in cell:
        value = value << 6 | _BCD.get(char, _BCD[" "])
    return value


def _slip_hash(datum: int, bits: int) -> int:
    """SLIP's ``HASH(D, N)``: the middle N bits of D squared (sign bit dropped)."""
    square = (datum & 0o377777777777) ** 2
    return (square >> (35 - bits // 2)) & ((1 << bits) - 1)


# -- matching and reassembly ----------------------------------------------------------


def _fits(element: _Element, word: str, tags: Mapping[str, frozenset[str]]) -> bool:
    if isinstance(element, str):
        return element == word
    if isinstance(element, _AnyOf):
        return word[:6] in element.cells
    if isinstance(element, _Tagged):
        return any(word in tags.get(tag, ()) for tag in element.tags)
    return False


def _match(
    pattern: Sequence[_Element], words: Sequence[str], tags: Mapping[str, frozenset[str]]
) -> list[list[str]] | None:
    """Decompose ``words`` by ``pattern``: one part per element, or None.

    Where several decompositions exist, each ``0`` takes as few words as it can,
    leftmost first -- what SLIP's YMATCH, which backtracks, arrives at. Computed
    from the right (``fits[p][w]``: pattern[p:] can match words[w:]) so that a
    long input costs len(pattern) × len(words), not a backtracking explosion.
    """
    present = set(words)
    if any(isinstance(e, str) and e not in present for e in pattern):
        return None
    n = len(words)
    fits: list[list[bool]] = [[False] * (n + 1) for _ in range(len(pattern) + 1)]
    fits[len(pattern)][n] = True
    for p in range(len(pattern) - 1, -1, -1):
        element, here, after = pattern[p], fits[p], fits[p + 1]
        if element == 0:
            reachable = False
            for w in range(n, -1, -1):
                reachable = reachable or after[w]
                here[w] = reachable
        elif isinstance(element, int):
            for w in range(n - element + 1):
                here[w] = after[w + element]
        else:
            for w in range(n):
                here[w] = after[w + 1] and _fits(element, words[w], tags)
    if not fits[0][0]:
        return None
    parts: list[list[str]] = []
    w = 0
    for p, element in enumerate(pattern):
        after = fits[p + 1]
        if element == 0:
            end = w
            while not after[end]:
                end += 1
        elif isinstance(element, int):
            end = w + element
        else:
            end = w + 1
        parts.append(list(words[w:end]))
        w = end
    return parts


def _assemble(text: _Text, parts: Sequence[Sequence[str]]) -> list[str]:
    words: list[str] = []
    for item in text.items:
        if isinstance(item, int):
            words.extend(parts[item - 1])
        else:
            words.append(item)
    return words


# -- the conversation ---------------------------------------------------------------

_FAREWELLS: Final = frozenset(
    {
        "BYE",
        "BYE BYE",
        "BYE FOR NOW",
        "GOODBYE",
        "GOOD BYE",
        "FAREWELL",
        "QUIT",
        "EXIT",
        "LOGOUT",
        "LOG OUT",
        "SO LONG",
        "SEE YOU",
        "SEE YOU LATER",
        "GOODNIGHT",
        "GOOD NIGHT",
    }
)
_ADDRESSEES: Final = frozenset({"DOCTOR", "DOC", "ELIZA", "THEN", "NOW", "ALL"})


class Eliza:
    """One conversation with DOCTOR.

    Deterministic: the same inputs in the same order always give the same answers.
    The state that carries from one answer to the next -- where each decomposition
    rule is in its cycle of reassemblies, the MEMORY queue and LIMIT -- round-trips
    through :meth:`export_state` and :meth:`import_state`.
    """

    def __init__(self) -> None:
        self._limit = 1  # LIMIT: 1, 2, 3, 4, 1 ...; advanced before each answer
        self._memories: list[str] = []  # the MEMORY queue, oldest first
        self._positions: dict[str, list[int]] = {}  # keyword -> next reassembly per rule

    def _reset(self) -> None:
        self._limit = 1
        self._memories = []
        self._positions = {}

    # -- conversation ------------------------------------------------------------------

    def greeting(self) -> str:
        """The script's opening remark."""
        return _SCRIPT.greeting

    def is_farewell(self, text: str) -> bool:
        """Whether ``text`` is just a goodbye ("Bye.", "Goodbye, doctor!", "quit").

        ELIZA itself never ends a conversation; this is for the program around it.
        """
        plain = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
        phrase = " ".join(re.sub(r"[^A-Z]+", " ", plain.upper()).split())
        if phrase in _FAREWELLS:
            return True
        head, _, last = phrase.rpartition(" ")  # "GOODBYE DOCTOR", "BYE NOW"
        return last in _ADDRESSEES and head in _FAREWELLS

    def respond(self, text: str) -> str:
        """ELIZA's answer to ``text``, in upper case like the 1966 teletype's."""
        script = _SCRIPT
        self._limit = self._limit % 4 + 1
        words, keystack = self._scan(_words(text))

        if not keystack and self._limit == 4 and self._memories:
            return self._memories.pop(0)

        for _ in range(_MAX_STEPS):
            if not keystack:
                break
            keyword = keystack.pop(0)
            entry = script.entries[keyword]
            if keyword == script.memory_keyword:
                self._remember(words)
            found = self._decompose(entry, words)
            if found is None:
                return _NOMATCH[self._limit - 1]
            reassembly, parts = found
            match reassembly:
                case _Text():
                    return " ".join(_assemble(reassembly, parts))
                case _Link(keyword=target):
                    keystack.insert(0, target)
                case _Pre(text=rewrite, keyword=target):
                    words = _assemble(rewrite, parts)
                    keystack.insert(0, target)
                case _NewKey():
                    pass

        found = self._decompose(script.none, words)
        if found is not None and isinstance(found[0], _Text):
            return " ".join(_assemble(found[0], found[1]))
        return _NOMATCH[self._limit - 1]

    # -- state --------------------------------------------------------------------------

    def export_state(self) -> dict[str, object]:
        """Everything that carries over between answers, as JSON-ready data."""
        return {
            "version": 1,
            "limit": self._limit,
            "memories": list(self._memories),
            "positions": {k: list(v) for k, v in sorted(self._positions.items()) if any(v)},
        }

    def import_state(self, state: dict[str, object]) -> None:
        """Continue a conversation exported by :meth:`export_state`.

        Starts from a fresh conversation and takes what it can use: entries it does
        not know, or whose values are out of range or of the wrong type, are ignored.
        """
        self._reset()
        if not isinstance(state, Mapping):
            return
        limit = state.get("limit")
        if type(limit) is int and 1 <= limit <= 4:
            self._limit = limit
        memories = state.get("memories")
        if isinstance(memories, list):
            self._memories = [m for m in memories if isinstance(m, str) and m.strip()]
        positions = state.get("positions")
        if isinstance(positions, Mapping):
            for keyword, values in positions.items():
                entry = _SCRIPT.none if keyword == "NONE" else _SCRIPT.entries.get(keyword)
                if entry is None or not entry.transformations or not isinstance(values, list):
                    continue
                cycle = self._cycle(entry)
                for i, (transformation, value) in enumerate(
                    zip(entry.transformations, values, strict=False)
                ):
                    if type(value) is int and 0 <= value < len(transformation.reassemblies):
                        cycle[i] = value

    # -- the mechanism ------------------------------------------------------------------

    def _scan(self, words: list[str]) -> tuple[list[str], list[str]]:
        """Substitute words and build the keystack over the first clause with a keyword."""
        entries = _SCRIPT.entries
        clause: list[str] = []
        keystack: list[str] = []
        top_rank = 0
        for word in words:
            if word in _DELIMITERS:
                if keystack:
                    break
                clause = []
                continue
            entry = entries.get(word)
            if entry is not None:
                if entry.is_keyword:
                    if entry.rank > top_rank:
                        keystack.insert(0, word)
                        top_rank = entry.rank
                    else:
                        keystack.append(word)
                if entry.substitute is not None:
                    word = entry.substitute
            clause.append(word)
        return clause, keystack

    def _cycle(self, entry: _Entry) -> list[int]:
        cycle = self._positions.get(entry.word)
        if cycle is None or len(cycle) != len(entry.transformations):
            cycle = self._positions[entry.word] = [0] * len(entry.transformations)
        return cycle

    def _decompose(
        self, entry: _Entry, words: list[str]
    ) -> tuple[_Reassembly, list[list[str]]] | None:
        """The first matching decomposition's next reassembly rule, and the parts."""
        for i, transformation in enumerate(entry.transformations):
            parts = _match(transformation.decomposition, words, _SCRIPT.tags)
            if parts is not None:
                cycle = self._cycle(entry)
                chosen = transformation.reassemblies[cycle[i]]
                cycle[i] = (cycle[i] + 1) % len(transformation.reassemblies)
                return chosen, parts
        if entry.link is not None:
            return _Link(entry.link), []
        return None

    def _remember(self, words: list[str]) -> None:
        """Queue the MEMORY transformation HASH(last word, 2) selects, if it applies."""
        if not words:
            return
        memory = _SCRIPT.memory[_slip_hash(_last_cell(words[-1]), 2)]
        parts = _match(memory.decomposition, words, _SCRIPT.tags)
        text = memory.reassemblies[0]
        if parts is not None and isinstance(text, _Text):
            self._memories.append(" ".join(_assemble(text, parts)))
