"""``plugbay run``'s options read without a command framework, for the lean path.

Loading typer, click, rich's help and every command group takes longer than the
rest of ``plugbay run`` together until its plugins answer. So the ``plugbay``
command reads ``run``'s options here first, with a parser that accepts only what it
understands for certain: the options of :func:`plugbay.cli.run.run`, each spelled as
typer spells it, values of the plain shapes (a port is digits), and a loopback
``--http``. Anything else (``--help``, an unknown or misspelt option, a value of
the wrong type, a public address, a value that looks like an option) returns None,
and the typer command reads the same argv: it prints the same help and the same
errors as it always did. ``tests/test_cli_lean_run.py`` checks that for every
option this parser and typer's agree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

__all__ = ["OPTIONS", "RunOptions", "parse_run"]


@dataclass(frozen=True)
class RunOptions:
    """What ``plugbay run`` was asked for; the names are :func:`plugbay.cli.run.run`'s."""

    plugins: tuple[Path, ...] | None = None
    state: Path = Path(".plugbay")
    config: Path | None = None
    once: bool = False
    metrics_port: int = 9464
    no_metrics: bool = False
    metrics_public: bool = False
    http: str = "127.0.0.1:8750"
    no_http: bool = False
    http_public: bool = False
    http_max_body: int = 1 << 20
    watch: bool = False
    drain: float = 10.0


#: option spelling → (field, kind); kinds: flag, path, paths (repeatable), int, port (an int
#: to 65535: a larger one is typer's to refuse), size (an int from 1: 0 is typer's to
#: refuse), float, text
OPTIONS: Final[Mapping[str, tuple[str, str]]] = {
    "--plugins": ("plugins", "paths"),
    "-p": ("plugins", "paths"),
    "--state": ("state", "path"),
    "--config": ("config", "path"),
    "-c": ("config", "path"),
    "--once": ("once", "flag"),
    "--metrics-port": ("metrics_port", "port"),
    "--no-metrics": ("no_metrics", "flag"),
    "--metrics-public": ("metrics_public", "flag"),
    "--http": ("http", "text"),
    "--no-http": ("no_http", "flag"),
    "--http-public": ("http_public", "flag"),
    "--http-max-body": ("http_max_body", "size"),
    "--watch": ("watch", "flag"),
    "-w": ("watch", "flag"),
    "--drain": ("drain", "float"),
}

#: the options typer also reads from the environment (the command line wins)
ENVIRONMENT: Final[Mapping[str, str]] = {
    "plugins": "PLUGBAY_PLUGINS",
    "state": "PLUGBAY_STATE",
    "config": "PLUGBAY_CONFIG",
    "http": "PLUGBAY_HTTP",
}

_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
#: the binds the lean path serves without asking typer: loopback, port as digits
_LOOPBACK = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])?:([0-9]{1,5})")


def parse_run(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> RunOptions | None:
    """``run``'s options from ``argv`` (what follows ``run``) and the environment, or
    None when the typer command must read them (help, an error, anything unusual)."""
    given = _from_argv(argv)
    if given is None:
        return None
    options = _from_environment(RunOptions(**given), given, environ)  # type: ignore[arg-type]
    if options is None:
        return None
    if not options.no_http and not _http_fits(options):
        return None  # a public or malformed --http (checked under --once too): typer says why
    if not _paths_fit(options):
        return None  # a path of the wrong kind: typer says which (cli._path_options)
    return options


def _paths_fit(options: RunOptions) -> bool:
    """No ``--state`` or ``--plugins`` that is a file, no ``--config`` that is a directory
    or does not exist."""
    directories = [options.state, *(options.plugins or ())]
    if any(path.exists() and not path.is_dir() for path in directories):
        return False
    config = options.config
    return config is None or (config.exists() and not config.is_dir())


def _http_fits(options: RunOptions) -> bool:
    """``--http`` as the lean path serves it (loopback), or, under ``--once``, which serves
    nothing, any HOST:PORT (as ``plugbay.web.parse_bind`` reads it)."""
    if bind_of(options.http) is not None:
        return True
    _, sep, port = options.http.rpartition(":")
    return options.once and bool(sep) and port.isdigit() and int(port) <= 65535


def _from_argv(argv: Sequence[str]) -> dict[str, object] | None:
    """The options ``argv`` gives, by field; None at the first thing not understood."""
    given: dict[str, object] = {}
    plugins: list[Path] = []
    args = iter(argv)
    for arg in args:
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        spec = OPTIONS.get(name)
        if spec is None:
            return None
        field, kind = spec
        if kind == "flag":
            if eq:
                return None
            given[field] = True
            continue
        text = inline if eq else next(args, None)
        value = None if text is None else _value(kind, text)
        if value is None:
            return None
        if isinstance(value, Path) and kind == "paths":
            plugins.append(value)
        else:
            given[field] = value
    if plugins:
        given["plugins"] = tuple(plugins)
    return given


def _value(kind: str, text: str) -> object | None:
    if not text or text.startswith("-") or text != text.strip():
        return None
    if kind == "int":
        return int(text) if _DIGITS.fullmatch(text) else None
    if kind == "size":
        return int(text) if _DIGITS.fullmatch(text) and int(text) >= 1 else None
    if kind == "port":
        return int(text) if _DIGITS.fullmatch(text) and int(text) <= 65535 else None
    if kind == "float":
        return float(text) if _DECIMAL.fullmatch(text) else None
    if kind in ("path", "paths"):
        return Path(text)
    return text


def _from_environment(
    options: RunOptions, given: Mapping[str, object], environ: Mapping[str, str]
) -> RunOptions | None:
    changes: dict[str, object] = {}
    for field, variable in ENVIRONMENT.items():
        text = environ.get(variable)
        if not text or field in given:
            continue
        if field == "plugins":
            # typer splits a repeatable path option's variable at os.pathsep
            if any(not part or part != part.strip() for part in text.split(os.pathsep)):
                return None
            changes[field] = tuple(Path(part) for part in text.split(os.pathsep))
        elif text != text.strip():
            return None
        else:
            changes[field] = Path(text) if field in ("state", "config") else text
    return replace(options, **changes) if changes else options  # type: ignore[arg-type]


def bind_of(text: str) -> tuple[str, int] | None:
    """A loopback ``--http`` as ``plugbay.web.parse_bind`` reads it; None for anything else."""
    match = _LOOPBACK.fullmatch(text)
    if match is None or int(match.group(2)) > 65535:
        return None
    return (match.group(1) or "127.0.0.1").strip("[]"), int(match.group(2))
