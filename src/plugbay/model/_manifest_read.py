"""Reading a manifest's text: bounded, decoded, and parsed as TOML, every problem worded.

A thousand plugins are a thousand small files read at each start. A text-mode
``open`` spends most of its time building the file object, its buffer and its
decoder (25 µs for a 300-byte file, more than parsing it); :func:`read_text`
reads the bytes with ``os.read`` and decodes them once (5 µs), with the same
result: UTF-8, line ends made ``\\n`` as text mode makes them, and nothing past
:data:`MAX_MANIFEST_BYTES` read.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any, Final

from plugbay.api.errors import ManifestError, PlugbayError
from plugbay.model import _fasttoml

__all__ = ["MAX_MANIFEST_BYTES", "parse_toml", "read_text", "too_deep", "unreadable"]

#: A manifest (or pyproject.toml) larger than this is refused before it is parsed: a real
#: one is a few KiB, and a huge file is a mistake or an attack on the reader.
MAX_MANIFEST_BYTES: Final = 1 << 20

_FLAGS: Final = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def read_text(path: str | os.PathLike[str], *, what: str = "the manifest") -> str:
    """The file's text, as ``open(path, encoding="utf-8").read()`` gives it. A file over
    :data:`MAX_MANIFEST_BYTES` is a :class:`ManifestError`, refused after reading only
    that much; ``OSError`` and ``UnicodeDecodeError`` are the caller's to word."""
    fd = os.open(path, _FLAGS)
    try:
        data = os.read(fd, MAX_MANIFEST_BYTES + 1)
        # a regular file gives all it has in one read; a pipe or a device may not
        while data and len(data) <= MAX_MANIFEST_BYTES:
            more = os.read(fd, MAX_MANIFEST_BYTES + 1 - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) > MAX_MANIFEST_BYTES:
        raise too_large(os.fspath(path), what)
    text = data.decode("utf-8")
    if "\r" in text:  # universal newlines, as text mode reads them
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def parse_toml(
    text: str, where: str, *, what: str = "the file", error: type[PlugbayError] = ManifestError
) -> dict[str, Any]:
    """Parse TOML that a person or a plugin author wrote, whatever it holds: too large, too
    deep or not TOML at all is an ``error`` naming ``where``, never a bare exception."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise too_large(where, what, error)
    plain = _fasttoml.loads(text)  # the plain TOML manifests are written in, fast
    if plain is not None:
        return plain
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if text.startswith("\ufeff"):
            raise error(
                f"{what} starts with a byte-order mark (U+FEFF), which TOML does not allow",
                where=f"{where}:1",
                hint="save the file as UTF-8 without a BOM (the editor's 'UTF-8', not "
                "'UTF-8 with BOM')",
            ) from None
        raise error(
            f"{what} is not valid TOML: {exc}",
            where=_fasttoml.with_line(where, exc),
            hint="fix the TOML syntax (strings need quotes, tables are [name], keys are key = value)",
        ) from None
    except RecursionError:
        raise too_deep(where, what, error) from None


def unreadable(path: str, exc: OSError | UnicodeDecodeError) -> ManifestError:
    """The manifest at ``path`` could not be read (``exc``): said with the line of a byte
    that is not UTF-8, or what the system said, and what to do."""
    if isinstance(exc, UnicodeDecodeError):
        line = exc.object[: exc.start].count(b"\n") + 1
        return ManifestError(
            f"cannot read the manifest: byte {exc.object[exc.start]:#04x} on line {line} is "
            "not UTF-8 (was it saved as Latin-1 or Windows-1252?)",
            where=f"{path}:{line}",
            hint="save the file as UTF-8, as TOML requires",
        )
    return ManifestError(
        f"cannot read the manifest: {exc.strerror or exc}",
        where=path,
        hint="check that the file is there and that the user plugbay runs as may read it",
    )


def too_large(where: str, what: str, error: type[PlugbayError] = ManifestError) -> PlugbayError:
    return error(
        f"{what} is larger than {MAX_MANIFEST_BYTES:,} bytes; refused unread",
        where=where,
        hint="a manifest is a few KiB; check that this is the file you meant",
    )


def too_deep(where: str, what: str, error: type[PlugbayError] = ManifestError) -> PlugbayError:
    return error(
        f"{what} nests arrays or tables too deeply to be read",
        where=where,
        hint="a manifest nests a few levels at most; flatten the value",
    )
