"""utility.formatters — text helpers, provided to other plugins as the service ``formatting``."""

from __future__ import annotations

from plugbay import PluginContext, UtilityPlugin, command

from . import formatting

Cell = str | int | float | bool | None


class FormattersPlugin(UtilityPlugin):
    def __init__(self) -> None:
        self.default_width = 72

    async def initialize(self, context: PluginContext) -> None:
        self.default_width = int(context.config["default-width"])

    @command
    def normalize(self, text: str) -> str:
        """Collapse whitespace, NFC-normalise, straighten curly quotes."""
        return formatting.normalize(text)

    @command
    def wrap(self, text: str, width: int | None = None) -> str:
        """Wrap text to ``width`` columns (the configured default when omitted)."""
        return formatting.wrap(text, self.default_width if width is None else width)

    @command
    def sentence_case(self, text: str) -> str:
        """'I AM SAD. WHY' → 'I am sad. Why'."""
        return formatting.sentence_case(text)

    @command
    def table(self, rows: list[dict[str, Cell]]) -> str:
        """An aligned plain-text table; the header is the union of keys in first-seen order."""
        return formatting.table([dict(r) for r in rows])

    @command
    def truncate(self, text: str, limit: int, ellipsis: str = "…") -> str:
        """At most ``limit`` characters, ending in ``ellipsis`` when cut."""
        return formatting.truncate(text, limit, ellipsis)
