"""Identity from the channel: how the host reads what a worker sends it.

A worker runs plugin code, so everything in its frames is the plugin's word.
The host attributes every frame to the plugin that owns the channel it came on
(never to a name inside the message), bounds it (``isolation.bounds``), and
decides itself what kind of thing it is:

* a log record is the sender's log, marked ``source = "plugin"``; a logger name
  or fields naming another plugin or imitating a host record are kept as the
  sender's data (reserved field names are prefixed ``plugin.``); a plugin's records
  reach at most :data:`LOGGER_NAMES` loggers of the host (each name is a
  ``logging.Logger`` the host keeps for good), the rest through its own logger;
* a security frame is the worker's *report* (``source = "worker"``): only known
  keys, bounded, rate-limited; the host's own events say ``source = "host"``;
* an error is the plugin's error unless the host can stand behind its kind:
  a refusal the host issued to this plugin over its channel (a broker's denial
  among them) and the plugin passed on unchanged (its token, good once and only for
  that error: ``isolation.refusals``), or a sandbox denial consistent with this
  plugin's placement (a permission it was not granted, a known layer): either is the
  host's refusal that the plugin passed on (``details["relayed_by"]``, as an inline
  plugin's is: a secret not granted answers alike in both backends). Anything
  else claiming a host-only kind (``permission_denied``, ``resource_limit``,
  ``plugin_crashed``…) is presented as the plugin's own error, ``plugin_raised``,
  with the claim kept in details; any other kind keeps its code and is marked the
  plugin's (``details["raised_by"]``), so the HTTP API answers it as the plugin's
  failure, not the request's (``web._errors``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Final

from plugbay.api.errors import (
    PermissionDenied,
    PlugbayError,
    PluginCallError,
    ResourceLimitExceeded,
    error_from_dict,
)
from plugbay.isolation.frames import CHECKED_BY
from plugbay.isolation.refusals import vouched
from plugbay.monitor.bounds import RESERVED_FIELDS, Budget, bounded

__all__ = [
    "HOST_ONLY",
    "LOGGER_NAMES",
    "deliver_log",
    "judge_error",
    "log_fields",
    "log_message",
    "log_record",
    "security_event",
]

#: error kinds only the host may produce; a worker's claim of one is judged (every error
#: a host call of a worker ends in is stamped: ``runtime.broker``)
HOST_ONLY: Final = frozenset(
    {
        "permission_denied", "resource_limit", "plugin_crashed", "plugin_timeout",
        "plugin_not_found", "plugin_state", "plugin_has_dependents", "state_error",
        "host_state", "dependency_conflict", "dependency_missing", "dependency_cycle",
    }
)  # fmt: skip
#: marks of who failed that only the host sets on a worker's error
_MARKS: Final = frozenset({"raised_by", "relayed_by", CHECKED_BY})
#: the layers a worker's guard names in a denial (``isolation.guard``)
_SANDBOX_LAYERS: Final = frozenset(
    {"seccomp", "landlock", "netns", "netns/seccomp", "netns/landlock", "secrets", "guard"}
)
_LIMITS: Final = frozenset(
    {"memory", "cpu_seconds", "open_files", "file_size", "storage", "processes", "threads"}
)
#: what a worker's security frame may carry, and how long each value may be
_SECURITY_KEYS: Final = ("kind", "operation", "permission", "layer", "limit", "detail")
_SECURITY_KINDS: Final = frozenset({"denied", "limit", "killed", "timeout"})


def log_fields(fields: dict[str, Any] | None, budget: Budget | None) -> dict[str, Any]:
    """A worker's record fields as the host keeps them: the plugin's, bounded, marked."""
    out: dict[str, Any] = {}
    if fields:
        for key, value in fields.items():
            key = str(key)
            out[f"plugin.{key}" if key in RESERVED_FIELDS else key] = value
        limit = budget.bounds.log_fields_bytes if budget is not None else 16 * 1024
        out, cut = bounded(out, limit)
        if cut and budget is not None:
            budget.drop("log_fields_truncated")
    out["source"] = "plugin"
    return out


#: what relativeCreated counts from, as in logging's own records
_START: Final[float] = getattr(logging, "_startTime", time.time())
_NEW = logging.LogRecord.__new__
#: what every record of a worker's line holds alike (copied in at C speed)
_ALIKE: Final[dict[str, Any]] = {
    "args": (), "pathname": "(worker)", "filename": "(worker)", "module": "worker",
    "exc_info": None, "exc_text": None, "stack_info": None, "lineno": 0, "funcName": None,
    "thread": None, "threadName": None, "processName": "worker", "taskName": None,
}  # fmt: skip


def log_record(
    name: str, level: int, message: str, pid: int, extra: dict[str, Any]
) -> logging.LogRecord:
    """A record made by the host for a worker's line, without ``LogRecord.__init__``'s
    work (caller lookup, thread and process names): a worker sends thousands a second,
    and none of that describes where the line was written (the worker, ``pid``)."""
    record = _NEW(logging.LogRecord)
    now = time.time()
    fields = record.__dict__
    fields.update(_ALIKE)
    fields.update(
        name=name, msg=message, levelno=level,
        levelname=logging.getLevelName(level),
        created=now, msecs=(now - int(now)) * 1000.0,
        relativeCreated=(now - _START) * 1000.0, process=pid, **extra,
    )  # fmt: skip
    return record


def log_message(message: str, budget: Budget | None) -> str:
    limit = budget.bounds.log_message_bytes if budget is not None else 8192
    if len(message) <= limit:
        return message
    if budget is not None:
        budget.drop("log_message_truncated")
    return message[:limit] + f"… ({len(message) - limit} more characters cut)"


def security_event(event: Any, budget: Budget | None) -> dict[str, Any] | None:
    """A worker's security frame as the host records it, or None when it is dropped."""
    if budget is not None and not budget.security.allow():
        budget.drop("security_rate")
        return None
    if not isinstance(event, dict):
        if budget is not None:
            budget.drop("security_malformed")
        return None
    out: dict[str, Any] = {}
    each = (budget.bounds.security_event_bytes if budget is not None else 2048) // len(
        _SECURITY_KEYS
    )
    cut = False
    for key in _SECURITY_KEYS:
        value = event.get(key)
        if value is None:
            continue
        text = str(value) if not isinstance(value, str) else value
        if len(text) > each:
            text, cut = text[:each] + "… (cut)", True
        out[key] = text
    if out.get("kind") not in _SECURITY_KINDS:
        out["kind"] = "denied"
    if cut and budget is not None:
        budget.drop("security_truncated")
    out["source"] = "worker"
    return out


#: loggers of the host a plugin's records may reach: its own and the ones below it
#: that it names first (``logging`` keeps a logger per name for good, so a plugin that
#: named a new one per record would grow the host without end); past these, a record
#: goes through the plugin's own logger, the name it gave kept as ``claimed_logger``
LOGGER_NAMES: Final = 64
#: plugin id → the loggers its records reach, by the name they give (at most LOGGER_NAMES)
_named: dict[str, dict[str, logging.Logger]] = {}


def _logger_of(
    plugin_id: str, logger: Any, kept: dict[str, Any], budget: Budget | None
) -> tuple[str, logging.Logger]:
    """The logger a worker's record is handled by, and its name; a name it may not use
    is kept in the record's fields (``kept``)."""
    named = _named.get(plugin_id)
    if named is None:
        named = _named[plugin_id] = {}
    name = logger if isinstance(logger, str) else ""
    target = named.get(name)
    if target is not None:  # the common record: a name it used before
        return name, target
    own = f"plugbay.plugin.{plugin_id}"
    below = name.startswith(own + ".")
    if name != own and not (below and len(named) < LOGGER_NAMES):  # not its to use
        kept["claimed_logger"] = name[:256]
        name = own
        if below and budget is not None:  # its own, but past the bound
            budget.drop("log_logger_names")
    target = named.get(name)
    if target is None:
        target = named[name] = logging.getLogger(name)
    return name, target


def deliver_log(
    logger: str,
    level: int,
    message: str,
    fields: dict[str, Any] | None,
    *,
    plugin_id: str,
    pid: int,
    budget: Budget | None,
) -> None:
    """A record from a worker, into its plugin's log whatever logger it names (bounded)."""
    if budget is not None and not budget.logs.allow():
        budget.drop("log_rate")
        return
    kept = log_fields(fields, budget)
    name, target = _logger_of(plugin_id, logger, kept, budget)
    level = level if isinstance(level, int) and 0 <= level <= 50 else 20
    if target.isEnabledFor(level):
        text = log_message(message, budget)
        extra = {"fields": kept, "plugbay_owner": plugin_id}
        target.handle(log_record(name, level, text, pid, extra))


def judge_error(
    data: Any,
    plugin_id: str,
    *,
    granted: Collection[str] = (),
    sandboxed: bool = False,
    issued: Callable[[str], bool] = lambda token: False,
) -> PlugbayError:
    """The error a worker reported, as the host presents it (see the module docstring)."""
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        data = {"type": "PluginCallError", "message": repr(data)[:2048]}
    error = error_from_dict(data)
    details = error.details if isinstance(error.details, dict) else {}
    judged = vouched(data, error, plugin_id, issued)  # the host's refusal, passed on
    if judged is not None:
        return judged
    if error.code not in HOST_ONLY:
        error.plugin = plugin_id  # its own error, whatever name it wrote in
        error.details = {k: v for k, v in details.items() if k not in _MARKS}
        if error.code == "parameter_invalid" and details.get(CHECKED_BY) == "worker":
            # the worker's check of the call's parameters (a plugin that says so of a
            # ParameterError of its own blames only the caller of its own command)
            error.details[CHECKED_BY] = "worker"
        else:  # its failure, not the request's, whatever kind it is (``web._errors``)
            error.details["raised_by"] = plugin_id
        return error
    if isinstance(error, PermissionDenied):
        judged = _judge_denial(error, details, plugin_id, granted, sandboxed)
    elif isinstance(error, ResourceLimitExceeded) and sandboxed:
        judged = _judge_limit(error, details, plugin_id)
    return judged if judged is not None else _claimed(error, plugin_id)


def _judge_denial(
    error: PermissionDenied,
    details: dict[str, Any],
    plugin_id: str,
    granted: Collection[str],
    sandboxed: bool,
) -> PlugbayError | None:
    """A denial a sandbox layer could have made, as the host reports it; else None (a
    broker's denial is the host's only with its token: ``isolation.refusals``)."""
    permission = details.get("permission")
    if not (
        sandboxed
        and details.get("layer") in _SANDBOX_LAYERS
        and (permission is None or (isinstance(permission, str) and permission not in granted))
    ):
        return None
    operation = str(details.get("operation") or "an operation")[:512]
    return PermissionDenied(
        str(error.message)[:512] or f"the sandbox denied {operation}",
        plugin=plugin_id,
        hint=str(error.hint or "")[:512] or None,
        details={
            "operation": operation,
            "permission": permission,
            "layer": details.get("layer"),
            # the host's refusal (its policy, this plugin's grants), which the plugin let
            # propagate: marked as an inline plugin's is (``runtime.origin``)
            "relayed_by": plugin_id,
        },
    )


def _judge_limit(
    error: ResourceLimitExceeded, details: dict[str, Any], plugin_id: str
) -> PlugbayError | None:
    """A limit a sandboxed worker can hit, as the host reports it; else None."""
    limit = details.get("limit")
    if limit not in _LIMITS:
        return None
    return ResourceLimitExceeded(
        str(error.message)[:2048],
        plugin=plugin_id,
        hint=str(error.hint or "")[:512] or None,
        # a full storage image keeps its worker (the plugin may free space); any other
        # limit replaces it: a worker may only ask to be kept, which costs the host nothing
        details={
            "limit": limit,
            "replace": details.get("replace") is not False,
            "reported_by": "worker",
        },
    )


def _claimed(error: PlugbayError, plugin_id: str) -> PlugbayError:
    """The plugin's own error dressed as one only the host may raise, shown as what it is."""
    code = error.code
    return PluginCallError(
        f"the plugin raised an error of its own that claims to be {code!r}: "
        f"{str(error.message)[:2048]}",
        plugin=plugin_id,
        hint="this is the plugin's own error, not the host's: the host did not deny or stop "
        "anything here",
        details={
            "claimed": code,
            "claimed_plugin": str(error.plugin)[:256] if error.plugin else None,
        },
    )
