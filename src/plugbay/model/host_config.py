"""Reading the host config file (``plugbay.toml``): one reader for every command.

The host (``plugbay run``), ``plugbay doctor``, ``plugbay env``, ``plugbay policy`` and
the signature check of ``plugbay install`` all read the file here, so a file that is
missing, a directory, unreadable, not UTF-8 or not TOML is reported in the same words
by each, naming the file (and the line, where there is one) and what to do. A caller
keeps its own error type (``error``): the PDK's signature check raises a
``SignatureError``, everything else a ``ConfigError``.

It lives in ``model`` because both ``isolation`` (the policy) and ``pdk`` (signing)
read the file, and ``model`` is below both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from plugbay.api.errors import ConfigError, PlugbayError
from plugbay.model._manifest_read import parse_toml

__all__ = ["no_unknown_keys", "read_host_config", "require_signed"]

_WHICH = "the host config's path (--config, PLUGBAY_CONFIG)"


def read_host_config(path: Path, *, error: type[PlugbayError] = ConfigError) -> dict[str, Any]:
    """The host config file at ``path`` as TOML data: one that does not exist, cannot be
    read or is not TOML is an ``error`` naming it (and the line, for bad TOML)."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(
            "the host config file does not exist",
            where=where,
            hint=f"check {_WHICH}, or give none to run with the default policy",
        ) from None
    except IsADirectoryError:
        raise error(
            "the host config is a directory, not a file",
            where=where,
            hint=f"give the TOML file itself, not its directory, as {_WHICH}",
        ) from None
    except PermissionError:
        raise error(
            "the host config cannot be read: permission denied",
            where=where,
            hint="let the user plugbay runs as read it (chmod, chown), or point "
            "--config at a copy it can read",
        ) from None
    except OSError as exc:
        raise error(
            f"the host config cannot be read: {exc.strerror or exc}",
            where=where,
            hint=f"check the file and {_WHICH}",
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"the host config is not UTF-8 text (byte {raw[exc.start]:#04x})",
            where=f"{where}:{line}",
            hint="save it as UTF-8",
        ) from None
    return parse_toml(text, where, what="the host config", error=error)


def require_signed(
    data: Mapping[str, Any], where: str, *, error: type[PlugbayError] = ConfigError
) -> bool:
    """``[policy] require-signed`` of the host config ``data`` read from ``where``: whether
    only signed wheels are installed (False when it is not set)."""
    table = data.get("policy", {})
    if not isinstance(table, Mapping):
        raise error(
            "[policy] must be a table",
            where=where,
            hint="write it as a [policy] section of key = value lines",
        )
    value = table.get("require-signed", False)
    if not isinstance(value, bool):
        raise error(
            f"[policy] require-signed must be true or false, not {value!r}",
            where=where,
            hint="write require-signed = true (install only signed wheels) or false",
        )
    return value


def no_unknown_keys(
    table: Mapping[str, Any], known: Iterable[str], name: str, where: str | None, see: str = ""
) -> None:
    """A ``ConfigError`` for the first key of ``table`` (the file's ``name``, ``[ray]``)
    that is not one of ``known``, naming the keys it has (and ``see``, where they are
    explained)."""
    allowed = set(known)
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{name} has no key '{key}'",
                where=where,
                hint=f"known keys: {', '.join(sorted(allowed))}" + (f" ({see})" if see else ""),
            )
