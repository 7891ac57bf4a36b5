"""The host config's ``[python]`` table: where uv finds the packages of plugins'
environments (``runtime.environments``), read and checked.

Each mistake in the table is refused with the file it is in and what to write
instead, as the other tables of the host config are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from plugbay.api.errors import ConfigError
from plugbay.model.host_config import no_unknown_keys

__all__ = ["IndexSettings"]

_PYTHON_KEYS: Final = frozenset({"find-links", "index-url", "offline", "allow-direct-references"})


@dataclasses.dataclass(frozen=True)
class IndexSettings:
    """Where uv finds packages: the host config's ``[python]`` table or ``plugbay install``'s
    options. Nothing set: uv's own defaults (its configured index)."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    offline: bool = False
    #: a requirement that is a URL or a local path (``name @ file:///…``) is refused unless set
    allow_direct: bool = False

    @classmethod
    def from_config(
        cls, data: Mapping[str, Any], *, where: str = "host config", base: Path | None = None
    ) -> IndexSettings:
        """``[python]`` of the host config; a relative find-links directory is taken from
        ``base`` (the config file's directory)."""
        table = _python_table(data, where)
        links = _find_links(table, where)
        index = table.get("index-url")
        if index is not None and not isinstance(index, str):
            raise ConfigError(
                f"[python] index-url must be a string, not {index!r}",
                where=where,
                hint=f'quote the URL of a simple index: index-url = "https://…/simple" under '
                f"[python] in {where}",
            )
        flags = {k: table.get(k, False) for k in ("offline", "allow-direct-references")}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise ConfigError(
                    f"[python] {key} must be true or false, not {value!r}",
                    where=where,
                    hint=f"write {key} = true or {key} = false (unquoted) under [python] "
                    f"in {where}",
                )
        if base is not None:
            links = [_from_base(base, link) for link in links]
        return cls(tuple(links), index, flags["offline"], flags["allow-direct-references"])

    def merged(
        self,
        *,
        find_links: Sequence[str] = (),
        index_url: str | None = None,
        offline: bool | None = None,
    ) -> IndexSettings:
        """These settings, with a command line's options added (they win)."""
        return dataclasses.replace(
            self,
            # one directory named by both the config and the command line is one place
            find_links=tuple(dict.fromkeys((*find_links, *self.find_links))),
            index_url=index_url or self.index_url,
            offline=self.offline if offline is None else offline,
        )


def _python_table(data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The config's ``[python]`` table, holding only keys plugbay knows."""
    table = data.get("python", {})
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"[python] must be a table, not {table!r}",
            where=where,
            hint=f"write it as a [python] section of key = value lines in {where} "
            "(docs/environments.md, For operators, lists them)",
        )
    no_unknown_keys(table, _PYTHON_KEYS, "[python]", where)
    return table


def _find_links(table: Mapping[str, Any], where: str) -> list[str]:
    """``find-links``: one path or URL, or a list of them."""
    links = table.get("find-links", [])
    if isinstance(links, str):
        links = [links]
    if not isinstance(links, list) or not all(isinstance(x, str) for x in links):
        raise ConfigError(
            f"[python] find-links must be a list of paths or URLs, not {links!r}",
            where=where,
            hint=f'write find-links = ["/srv/wheels"], each directory (or URL) of wheels '
            f"quoted, under [python] in {where} (a relative directory is taken from the file's)",
        )
    return links


def _from_base(base: Path, link: str) -> str:
    """A relative find-links directory, taken from ``base``; URLs and absolute paths as given."""
    return str(base / link) if "://" not in link and not Path(link).is_absolute() else link
