"""ELIZA, interpreting Weizenbaum's 1966 DOCTOR script (``doctor_script.py``).

The mechanism follows the CACM paper:

* the input is split into words; ``.`` ``,`` ``BUT`` (and ``?`` ``!`` ``;``)
  delimit clauses. Scanning left to right, each word is replaced by its
  transformation (``I`` → ``YOU``, ``MY`` → ``YOUR`` …) and keywords go on the
  keystack, a higher rank on top. At a delimiter, if a keyword was found the rest
  of the input is dropped, otherwise the clause before it is;
* the top keyword's decomposition rules are tried in order: ``0`` matches any
  number of words, ``n`` exactly n, ``(* A B)`` one of the words, ``(/TAG)`` a
  word of that DLIST class; the first that matches is reassembled with its next
  reassembly rule (they are used in turn, cyclically); ``n`` in a reassembly is
  the n-th part of the decomposition;
* ``(=KEY)`` continues with another keyword's rules, ``(NEWKEY)`` with the next
  keyword on the stack, ``(PRE (...) (=KEY))`` reassembles first and continues;
* when the top keyword is ``MY``, a transformation of the text from the MEMORY
  list is queued; with no keyword, a queued memory is answered, else ``NONE``.

The paper leaves open how a MEMORY transformation is chosen ("randomly"); this
engine takes them in turn, which keeps every conversation reproducible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .doctor_script import SCRIPT

__all__ = ["Eliza"]

Pattern = list[int | str | tuple[str, ...]]  # int: count (0 = any); str: word or /TAG


@dataclass
class _Rule:
    pattern: Pattern
    reassemblies: list[object]  # list of tokens, or ("=", KEY), ("NEWKEY",), ("PRE", tokens, KEY)


@dataclass
class _Keyword:
    word: str
    rank: int = 0
    substitute: str | None = None
    tags: tuple[str, ...] = ()
    rules: list[_Rule] = field(default_factory=list)
    link: str | None = None  # a keyword whose rules are only (=KEY)


def _sexpr(text: str) -> list[object]:
    tokens = re.findall(r"\(|\)|[^\s()]+", text)
    stack: list[list[object]] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    return stack[0]


def _pattern(items: list[object]) -> Pattern:
    out: Pattern = []
    for item in items:
        if isinstance(item, list):
            words = [str(w) for w in item]
            head = words[0]
            if head.startswith("*"):
                alts = ([head[1:]] if head != "*" else []) + words[1:]
                out.append(tuple(a for a in alts if a))
            elif head.startswith("/"):
                tag = head[1:] or (words[1] if len(words) > 1 else "")
                out.append("/" + tag)
        elif str(item).isdigit():
            out.append(int(str(item)))
        else:
            out.append(str(item))
    return out


def _reassembly(item: list[object]) -> object:
    words = [w if isinstance(w, list) else str(w) for w in item]
    if words and words[0] == "NEWKEY":
        return ("NEWKEY",)
    if words and isinstance(words[0], str) and words[0].startswith("="):
        return ("=", words[0][1:] or str(words[1]))
    if words and words[0] == "PRE":
        target = words[2]
        assert isinstance(target, list)
        return (
            "PRE",
            [str(w) for w in words[1]] if isinstance(words[1], list) else [],
            str(target[0])[1:],
        )
    return [str(w) for w in words]


def _load() -> tuple[str, dict[str, _Keyword], list[tuple[Pattern, list[str]]]]:
    parsed = _sexpr(SCRIPT)
    head = parsed[0]
    assert isinstance(head, list)
    greeting = " ".join(str(w) for w in head)
    keywords: dict[str, _Keyword] = {}
    memory: list[tuple[Pattern, list[str]]] = []
    for entry in parsed[2:]:
        if not isinstance(entry, list) or not entry:
            continue
        word = str(entry[0])
        rest = entry[1:]
        if word == "MEMORY":
            for item in rest[1:]:
                assert isinstance(item, list)
                split = item.index("=")
                memory.append((_pattern(item[:split]), [str(w) for w in item[split + 1 :]]))
            continue
        kw = keywords.setdefault(word, _Keyword(word))
        i = 0
        while i < len(rest):
            item = rest[i]
            if item == "=":
                kw.substitute = str(rest[i + 1])
                i += 2
                continue
            if item == "DLIST":
                tags = rest[i + 1]
                assert isinstance(tags, list)
                words = [str(t) for t in tags]
                kw.tags = tuple(t.lstrip("/") for t in words if t.lstrip("/"))
                i += 2
                continue
            if isinstance(item, str) and item.isdigit():
                kw.rank = int(item)
            elif isinstance(item, list) and item:
                first = item[0]
                if isinstance(first, list):
                    kw.rules.append(
                        _Rule(
                            _pattern(first),
                            [_reassembly(r) for r in item[1:] if isinstance(r, list)],
                        )
                    )
                elif isinstance(first, str) and first.startswith("="):
                    kw.link = first[1:] or str(item[1])
            i += 1
    return greeting, keywords, memory


_GREETING, _KEYWORDS, _MEMORY = _load()
_TAGS: dict[str, set[str]] = {}
for _kw in _KEYWORDS.values():
    for _tag in _kw.tags:
        _TAGS.setdefault(_tag, set()).add(_kw.word)
        if _kw.substitute:
            _TAGS[_tag].add(_kw.substitute)

_DELIMITERS = {".", ",", "?", "!", ";", ":", "BUT"}
_FAREWELLS = {"BYE", "GOODBYE", "QUIT", "EXIT", "FAREWELL"}


def _tokens(text: str) -> list[str]:
    text = text.upper().replace("\u2019", "'")
    return re.findall(r"[A-Z0-9']+|[.,?!;:]", text)


def _match(pattern: Pattern, words: list[str]) -> list[list[str]] | None:
    """Decompose ``words`` by ``pattern``: one part per pattern element, or None."""

    def go(pi: int, wi: int) -> list[list[str]] | None:
        if pi == len(pattern):
            return [] if wi == len(words) else None
        element = pattern[pi]
        if element == 0:
            for end in range(wi, len(words) + 1):
                rest = go(pi + 1, end)
                if rest is not None:
                    return [words[wi:end], *rest]
            return None
        if isinstance(element, int):
            if wi + element > len(words):
                return None
            rest = go(pi + 1, wi + element)
            return None if rest is None else [words[wi : wi + element], *rest]
        if wi >= len(words):
            return None
        word = words[wi]
        if isinstance(element, tuple):
            ok = word in element
        elif element.startswith("/"):
            ok = word in _TAGS.get(element[1:], set())
        else:
            ok = word == element
        if not ok:
            return None
        rest = go(pi + 1, wi + 1)
        return None if rest is None else [[word], *rest]

    return go(0, 0)


def _assemble(template: list[str], parts: list[list[str]]) -> list[str]:
    out: list[str] = []
    for tok in template:
        if tok.isdigit() and 0 < int(tok) <= len(parts):
            out.extend(parts[int(tok) - 1])
        else:
            out.append(tok)
    return out


class Eliza:
    """One conversation with DOCTOR. Deterministic: the same inputs give the same answers."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}  # "KEY#rule" -> next reassembly index
        self._memory: list[str] = []
        self._memory_turn = 0

    def greeting(self) -> str:
        return _GREETING

    def is_farewell(self, text: str) -> bool:
        words = [w for w in _tokens(text) if w not in _DELIMITERS]
        return bool(words) and all(w in _FAREWELLS for w in words)

    def respond(self, text: str) -> str:
        words, stack = self._scan(text)
        for _ in range(len(stack) + 1):
            if not stack:
                break
            keyword = stack.pop(0)
            answer = self._apply(keyword, words, stack, depth=0)
            if answer is not None:
                if keyword.word == "MY" or keyword.substitute == "YOUR":
                    self._remember(words)
                return " ".join(answer)
        if self._memory:
            return self._memory.pop(0)
        none = _KEYWORDS["NONE"]
        answer = self._apply(none, words, [], depth=0)
        return " ".join(answer or ["PLEASE GO ON"])

    # -- scanning --------------------------------------------------------------------

    def _scan(self, text: str) -> tuple[list[str], list[_Keyword]]:
        words: list[str] = []
        stack: list[_Keyword] = []
        for token in _tokens(text)[:1000]:
            if token in _DELIMITERS:
                if stack:
                    break
                words = []
                continue
            kw = _KEYWORDS.get(token)
            word = kw.substitute if kw and kw.substitute else token
            words.append(word)
            if kw is not None and (kw.rules or kw.link):
                if stack and kw.rank > stack[0].rank:
                    stack.insert(0, kw)
                else:
                    stack.append(kw)
        return words, stack

    # -- rules -----------------------------------------------------------------------

    def _apply(
        self, keyword: _Keyword, words: list[str], stack: list[_Keyword], depth: int
    ) -> list[str] | None:
        if depth > 10:
            return None
        if keyword.link is not None and not keyword.rules:
            target = _KEYWORDS.get(keyword.link)
            return None if target is None else self._apply(target, words, stack, depth + 1)
        for index, rule in enumerate(keyword.rules):
            parts = _match(rule.pattern, words)
            if parts is None or not rule.reassemblies:
                continue
            slot = f"{keyword.word}#{index}"
            turn = self._next.get(slot, 0)
            self._next[slot] = (turn + 1) % len(rule.reassemblies)
            chosen = rule.reassemblies[turn % len(rule.reassemblies)]
            if isinstance(chosen, list):
                return _assemble(chosen, parts)
            assert isinstance(chosen, tuple)
            if chosen[0] == "NEWKEY":
                if not stack:
                    return None
                return self._apply(stack.pop(0), words, stack, depth + 1)
            if chosen[0] == "=":
                target = _KEYWORDS.get(chosen[1])
                return None if target is None else self._apply(target, words, stack, depth + 1)
            if chosen[0] == "PRE":
                target = _KEYWORDS.get(chosen[2])
                rewritten = _assemble(chosen[1], parts)
                return None if target is None else self._apply(target, rewritten, stack, depth + 1)
        if keyword.link is not None:
            target = _KEYWORDS.get(keyword.link)
            return None if target is None else self._apply(target, words, stack, depth + 1)
        return None

    def _remember(self, words: list[str]) -> None:
        pattern, template = _MEMORY[self._memory_turn % len(_MEMORY)]
        parts = _match(pattern, words)
        if parts is not None:
            self._memory.append(" ".join(_assemble(template, parts)))
            self._memory_turn += 1

    # -- state -----------------------------------------------------------------------

    def export_state(self) -> dict[str, object]:
        return {
            "next": dict(self._next),
            "memory": list(self._memory),
            "memory_turn": self._memory_turn,
        }

    def import_state(self, state: dict[str, object]) -> None:
        nxt = state.get("next")
        if isinstance(nxt, dict):
            self._next = {str(k): int(v) for k, v in nxt.items() if isinstance(v, int) and v >= 0}
        memory = state.get("memory")
        if isinstance(memory, list):
            self._memory = [str(m) for m in memory][-100:]
        turn = state.get("memory_turn")
        if isinstance(turn, int) and turn >= 0:
            self._memory_turn = turn
