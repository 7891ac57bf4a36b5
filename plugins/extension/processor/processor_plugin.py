"""extension.processor — ELIZA's DOCTOR as an extension plugin.

Each conversation is a *session*; its ELIZA state (reassembly positions and
the MEMORY queue) is saved in the data directory after every answer, so
successive ``plugbay call extension.processor respond text=…`` invocations
hold one conversation. Answers are re-cased through the ``formatting`` service.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Protocol

from plugbay import ExtensionPlugin, Feature, PluginContext, command

from .doctor import Eliza

_SESSION_RE = re.compile(r"[^A-Za-z0-9_.:-]")
#: the end of a session file's name since 1.0.0 names carry a hash (``_file``)
_HASHED_RE = re.compile(r"-[0-9a-f]{24}\.json\Z")
#: what DOCTOR reads at once: a few paragraphs (ELIZA's time grows with the text, and an
#: answer must not hold the worker's loop past its heartbeat)
MAX_TEXT = 10_000


class Formatting(Protocol):
    async def sentence_case(self, text: str) -> str: ...


class DoctorPlugin(ExtensionPlugin):
    features = [Feature("doctor", "respond", "Talk to Weizenbaum's DOCTOR")]

    def __init__(self) -> None:
        self.sessions: dict[str, Eliza] = {}
        self.directory: Path | None = None
        self.recase = True
        self.max_sessions = 1000
        self.formatting: Formatting | None = None
        self._left: set[str] = set()  # files of the old naming said to be left alone

    async def initialize(self, context: PluginContext) -> None:
        self.recase = bool(context.config["sentence-case"])
        self.max_sessions = int(context.config["max-sessions"])
        if context.config["persist"]:
            self.directory = context.environment.data_dir / "sessions"
            self.directory.mkdir(parents=True, exist_ok=True)
        # a Protocol describes the provider's commands; the proxy answers for them
        formatting: Formatting = context.services.require("formatting", "^1.0")
        self.formatting = formatting

    # -- sessions --------------------------------------------------------------------

    def _file(self, session: str) -> Path | None:
        """The session's file: a readable part of its name, and a hash of the whole, so
        two sessions ('a/b', 'a_b'; nicks 'bob[' and 'bob]') never share one."""
        if self.directory is None:
            return None
        digest = hashlib.sha256(session.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return self.directory / f"{_SESSION_RE.sub('_', session)[:60]}-{digest}.json"

    def _eliza(self, session: str) -> Eliza:
        eliza = self.sessions.pop(session, None)
        if eliza is None:
            eliza = Eliza()
            path = self._file(session)
            if path is not None and not path.exists():
                self._adopt_old_file(session, path)
            if path is not None and path.is_file():
                try:
                    eliza.import_state(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError) as exc:
                    self.context.logger.warning(
                        "session %r state unreadable (%s); starting afresh", session, exc
                    )
        self.sessions[session] = eliza  # re-insert: dict order is recency
        while len(self.sessions) > self.max_sessions:
            self.sessions.pop(next(iter(self.sessions)))
        return eliza

    def _adopt_old_file(self, session: str, path: Path) -> None:
        """Move the session's file of the naming before names carried a hash to ``path``
        when it can be no other session's (``_own_old_file``) and no other session has
        a file of the new naming with the same readable part (one that may have written
        it under the old naming). Otherwise it is left as it is, and said once."""
        old = path.with_name(_old_name(session))
        if not old.is_file():
            return
        readable = path.name[:-30]  # less '-<24 hex digits>.json'
        sibling = any(
            _HASHED_RE.search(p.name) and p.name[:-30] == readable
            for p in path.parent.glob(f"{readable}-*.json")
        )
        if _own_old_file(session, path) == old and not sibling:
            old.replace(path)
            self.context.logger.info(
                "session %r: its file %s is now %s", session, old.name, path.name
            )
            return
        if old.name not in self._left:
            self._left.add(old.name)
            self.context.logger.warning(
                "session %r: %s, a session file of the naming before names carried a hash, "
                "may be another session's (that naming was lossy): left as it is, so this "
                "session starts afresh; rename it to %s if it is this one's, or delete it",
                session, old.name, path.name,
            )  # fmt: skip

    def _save(self, session: str, eliza: Eliza) -> None:
        path = self._file(session)
        if path is not None:
            new = not path.exists()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(eliza.export_state()), encoding="utf-8")
            tmp.replace(path)
            if new:
                self._forget_beyond_max(path.parent)

    def _forget_beyond_max(self, directory: Path) -> None:
        """Keep ``max-sessions`` sessions on disk: the least recently answered go first."""
        files = list(directory.glob("*.json"))
        if len(files) <= self.max_sessions:
            return
        files.sort(key=_last_written)
        for old in files[: len(files) - self.max_sessions]:
            old.unlink(missing_ok=True)

    async def _cased(self, text: str) -> str:
        if self.recase and self.formatting is not None:
            return await self.formatting.sentence_case(text=text)
        return text

    # -- commands --------------------------------------------------------------------

    @command
    async def respond(self, text: str, session: str = "default") -> str:
        """ELIZA's answer to ``text`` (at most 10,000 characters) in conversation ``session``."""
        if len(text) > MAX_TEXT:
            raise ValueError(
                f"text is {len(text):,} characters; DOCTOR reads at most {MAX_TEXT:,} at once: "
                "say it in shorter parts"
            )
        eliza = self._eliza(session)
        answer = eliza.respond(text)
        self._save(session, eliza)
        self.context.metrics.increment("responses")
        return await self._cased(answer)

    @command
    async def greet(self, session: str = "default") -> str:
        """How DOCTOR opens a session."""
        return await self._cased(self._eliza(session).greeting())

    @command
    def reset(self, session: str = "default") -> None:
        """Forget a session's memory."""
        self.sessions.pop(session, None)
        path = self._file(session)
        if path is not None:
            path.unlink(missing_ok=True)
            old = _own_old_file(session, path)
            if old is not None:  # else it would be moved in, its memory back, on next use
                old.unlink(missing_ok=True)

    @command
    def sessions_known(self) -> list[str]:
        """Sessions in memory now."""
        return sorted(self.sessions)


def _old_name(session: str) -> str:
    """The session's file name before 1.0.0's names carried a hash: lossy, two sessions
    could share one ('bob[' and 'bob]'; names alike in their first 100 characters)."""
    return _SESSION_RE.sub("_", session)[:100] + ".json"


def _own_old_file(session: str, path: Path) -> Path | None:
    """The session's file of the old naming when that name is the session's own, nothing
    replaced or cut ('bob[' and 'bob]' both wrote 'bob_.json'), and not one of the new
    naming (a session named 'alice-<her hash>' would take hers); else None."""
    name = f"{session}.json"
    if name != _old_name(session) or _HASHED_RE.search(name):
        return None
    return path.with_name(name)


def _last_written(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # gone meanwhile: first to go anyway
        return 0
