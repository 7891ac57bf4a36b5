"""What of a plugin's log record a worker sends to the host: its message and fields,
made plain data so the record crosses the channel whatever the plugin passed.

Inline, the host keeps a record whose arguments do not fit its format, or whose
``fields`` hold objects, as best it can (``monitor.logs.LogManager.emit``); a worker
keeps it the same way rather than lose it on the way."""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec

from plugbay.monitor.bounds import bounded, traceback_text

__all__ = ["record_fields", "record_message"]

#: the longest message a worker sends (the host cuts again: this side is the plugin's own)
MESSAGE_CHARS: Final = 8192
#: the most a record's fields take, serialised
FIELDS_BYTES: Final = 16 * 1024

#: an object that is not plain data is sent as its repr, as the host's JSON shows it inline
_plain = msgspec.json.Encoder(enc_hook=repr)


def record_message(record: logging.LogRecord) -> str:
    """The record's message with its arguments applied; when they do not fit its format
    (``logger.info("%s %s", one)``), the format and the arguments, in the host's words."""
    try:
        message = record.getMessage()
    except Exception:  # the plugin's mistake: keep what it said
        message = f"{record.msg!r} % {record.args!r}"
    if len(message) > MESSAGE_CHARS:
        message = (
            message[:MESSAGE_CHARS] + f"… ({len(message) - MESSAGE_CHARS} more characters cut)"
        )
    return message


def record_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    """The record's ``fields`` (from ``extra``) as plain data within their bound, with a
    logged exception's traceback; None when it has neither."""
    fields = getattr(record, "fields", None)
    kept: dict[str, Any] | None = None
    if isinstance(fields, dict):
        try:
            plain = msgspec.json.decode(_plain.encode(fields))
        except (TypeError, ValueError, msgspec.MsgspecError):  # keys that are not text
            plain = {str(k): repr(v) for k, v in fields.items()}
        kept = bounded(plain, FIELDS_BYTES)[0]
    if record.exc_info and record.exc_info[1] is not None:  # logger.exception(...)
        kept = {**(kept or {}), "exception": traceback_text(record.exc_info[1])}
    return kept
