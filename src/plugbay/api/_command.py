"""Commands: the typed entry points of a plugin.

A method marked ``@command`` becomes a :class:`CommandMethod` descriptor. Read
on the class it is the command itself (``LoggingPlugin.log``); read on a plugin
instance, or on the typed proxy ``host.get(LoggingPlugin)``, it is an async
callable with the method's own parameters, whether the body is ``def`` or
``async def``. That single rule is what lets mypy check a caller's code:
``await proxy.log(message=1)`` is an error in the caller's editor, not at run time.

At the call boundary every call is checked against the annotations by
:class:`CommandSpec` (msgspec), before the plugin runs and after it returns.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any, Concatenate, Final, Generic, ParamSpec, TypeVar, overload

import msgspec

from plugbay.api.errors import ParameterError, PluginLoadError, ResultTypeError

__all__ = [
    "Command",
    "CommandMethod",
    "CommandSpec",
    "ParamInfo",
    "command",
    "command_specs",
]

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_MISSING: Final = inspect.Parameter.empty


def _cleandoc(doc: str) -> str:
    """``inspect.cleandoc``, with a one-line docstring cleaned without calling it (a
    sandboxed worker defines its plugin's commands after its fork: see `_plain_signature`)."""
    return inspect.cleandoc(doc) if "\n" in doc else doc.expandtabs().lstrip()


@dataclass(frozen=True, slots=True)
class Command(Generic[T]):
    """A request to run a command: the spec's ``Command<T>``.

    ``T`` is the result type; build one with ``Plugin.cmd.request(**params)``
    to keep it, or ``Command("name", {...})`` for an untyped request.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


class CommandMethod(Generic[S, P, R]):
    """What ``@command`` turns a method into. See the module docstring."""

    __slots__ = ("blocking", "doc", "func", "is_async", "name", "timeout")
    #: an event handler (``plugbay.api.on_event``) is checked like a command, never called as one
    is_event = False

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        blocking: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        self.blocking = blocking
        self.timeout = timeout
        self.is_async = (
            bool(func.__code__.co_flags & inspect.CO_COROUTINE)
            if type(func) is FunctionType
            else inspect.iscoroutinefunction(func)
        )
        self.doc = _cleandoc(func.__doc__ or "")

    def __set_name__(self, owner: type, attr: str) -> None:
        if self.name == self.func.__name__:
            self.name = attr

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> CommandMethod[S, P, R]: ...

    @overload
    def __get__(self, obj: S, owner: type[Any]) -> Callable[P, Awaitable[R]]: ...

    def __get__(self, obj: Any, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        return _bind(self, obj)

    def request(self, *args: P.args, **kwargs: P.kwargs) -> Command[R]:
        """A typed :class:`Command` for ``Plugin.execute``; positional arguments are named."""
        params = dict(kwargs)
        if args:
            names = list(inspect.signature(self.func).parameters)[1:]
            params.update(zip(names, args, strict=False))
        return Command(self.name, params)

    def __repr__(self) -> str:
        return f"<command {self.name!r} of {self.func.__qualname__}>"


def _bind(cmd: CommandMethod[Any, Any, Any], obj: Any) -> Callable[..., Awaitable[Any]]:
    func = cmd.func
    if cmd.is_async:

        def call_async(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            return typing.cast(Awaitable[Any], func(obj, *args, **kwargs))

        return call_async

    async def call_sync(*args: Any, **kwargs: Any) -> Any:
        return func(obj, *args, **kwargs)

    return call_sync


@overload
def command(
    func: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> CommandMethod[S, P, R]: ...


@overload
def command(func: Callable[Concatenate[S, P], R]) -> CommandMethod[S, P, R]: ...


@overload
def command(
    *, name: str | None = None, blocking: bool = False, timeout: float | None = None
) -> _CommandDecorator: ...


def command(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    blocking: bool = False,
    timeout: float | None = None,
) -> Any:
    """Mark a plugin method as a command callers may run.

    Every parameter and the return value must be annotated; the host checks
    calls against them. ``blocking=True`` runs a ``def`` body in a worker
    thread so it cannot stall the host's event loop; ``timeout`` (seconds)
    caps one call below the plugin's own limit.
    """
    if func is not None:
        return CommandMethod(func)
    return _CommandDecorator(name, blocking, timeout)


class _CommandDecorator:
    __slots__ = ("blocking", "name", "timeout")

    def __init__(self, name: str | None, blocking: bool, timeout: float | None) -> None:
        self.name, self.blocking, self.timeout = name, blocking, timeout

    @overload
    def __call__(
        self, func: Callable[Concatenate[S, P], Coroutine[Any, Any, R]]
    ) -> CommandMethod[S, P, R]: ...

    @overload
    def __call__(self, func: Callable[Concatenate[S, P], R]) -> CommandMethod[S, P, R]: ...

    def __call__(self, func: Callable[..., Any]) -> Any:
        return CommandMethod(func, name=self.name, blocking=self.blocking, timeout=self.timeout)


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    annotation: Any
    default: Any = _MISSING

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def render(self) -> str:
        text = f"{self.name}: {_type_name(self.annotation)}"
        return text if self.required else f"{text} = {self.default!r}"


def _type_name(tp: Any) -> str:
    if tp is type(None) or tp is None:
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "")


_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, bytes})


def _check_crosses(tp: Any) -> None:
    """Raise TypeError (or msgspec's ValueError) when a value of ``tp`` cannot cross a
    process or JSON boundary, naming the types that cannot."""
    custom = _custom_types(msgspec.inspect.type_info(tp))
    if custom:
        raise TypeError(
            f"{', '.join(sorted(c.__name__ for c in custom))} cannot cross a process "
            "or JSON boundary"
        )


def _first_uncheckable(params: list[ParamInfo]) -> str | None:
    """``parameter 'NAME': why`` for the first parameter whose type cannot be checked."""
    for p in params:
        try:
            _check_crosses(p.annotation)
        except (TypeError, ValueError) as exc:
            return f"parameter '{p.name}': {exc}"
    return None


def defined_at(func: Callable[..., Any]) -> str:
    """``FILE:LINE`` of a function's ``def`` (not of its first decorator), for an error."""
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    if code is None:
        return getattr(func, "__qualname__", repr(func))
    line = code.co_firstlineno
    try:
        lines, start = inspect.getsourcelines(func)
    except (OSError, TypeError):
        return f"{code.co_filename}:{line}"
    heads = (i for i, text in enumerate(lines) if text.lstrip().startswith(("def ", "async def ")))
    return f"{code.co_filename}:{start + next(heads, 0)}"


def _plain(params: list[ParamInfo], returns: Any) -> bool:
    """Every parameter a plain scalar, the result one or None or Any: types msgspec checks
    itself (no class it would only check with isinstance)."""
    return all(p.annotation in _SCALARS for p in params) and (
        returns in _SCALARS or returns is None or returns is type(None) or returns is Any
    )


def _exact_scalars(params: list[ParamInfo]) -> tuple[tuple[str, type], ...] | None:
    """(name, type) of every parameter when all are plain scalars, else None."""
    if all(p.annotation in _SCALARS for p in params):
        return tuple((p.name, p.annotation) for p in params)
    return None


#: the builtin a string annotation names when its module has nothing of that name
_BY_NAME: Final[dict[str, type]] = {tp.__name__: tp for tp in _SCALARS}
_CO_REFUSED: Final = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


def _scalar_named(annotation: object, namespace: dict[str, Any]) -> Any:
    """The builtin scalar (or ``NoneType``) an annotation names, else ``_MISSING``: what
    ``typing.get_type_hints`` makes of it, a string looked up as its ``eval`` would."""
    if isinstance(annotation, str):
        if annotation == "None":
            return type(None)
        annotation = namespace.get(annotation, _BY_NAME.get(annotation, _MISSING))
    if annotation is None:
        return type(None)
    if (type(annotation) is type and annotation in _SCALARS) or annotation is Any:
        return annotation
    return _MISSING


def _plain_function(func: Callable[..., Any]) -> bool:
    """A plain ``def`` taking ``self`` and named parameters: no ``/``, ``*args`` or
    ``**kwargs``, and no wrapper or signature of its own for ``inspect`` to follow."""
    if (
        type(func) is not FunctionType
        or getattr(func, "__wrapped__", None) is not None
        or getattr(func, "__signature__", None) is not None
    ):
        return False
    code = func.__code__
    return not (code.co_flags & _CO_REFUSED or code.co_posonlyargcount or not code.co_argcount)


def _plain_signature(func: Callable[..., Any]) -> tuple[list[ParamInfo], Any] | None:
    """A plain method's parameters and result type, read straight off its function.

    The same as ``typing.get_type_hints`` and ``inspect.signature`` give for a function
    whose parameters are each annotated with a builtin scalar and whose result is one,
    ``None`` or ``Any``, with no ``/``, ``*args``, ``**kwargs``, wrapper or signature of
    its own; ``None`` for anything else, which takes the general reading (and its errors).
    A sandboxed worker imports its plugin after its fork, and every Python function a start
    calls copies pages of the zygote's: this runs none of ``inspect``'s or ``typing``'s.
    """
    if not _plain_function(func):
        return None
    code = func.__code__
    annotations = func.__annotations__
    namespace = func.__globals__
    returns = _scalar_named(annotations.get("return", _MISSING), namespace)
    if returns is _MISSING:
        return None
    positional = code.co_argcount
    names = code.co_varnames[1 : positional + code.co_kwonlyargcount]
    defaults = func.__defaults__ or ()
    first_default = positional - len(defaults)  # index in co_varnames, self counted
    kwdefaults = func.__kwdefaults__ or {}
    params: list[ParamInfo] = []
    for i, name in enumerate(names, 1):
        tp = _scalar_named(annotations.get(name, _MISSING), namespace)
        if tp is _MISSING or tp is type(None) or tp is Any:
            return None
        if i < positional:
            default = defaults[i - first_default] if i >= first_default else _MISSING
        else:
            default = kwdefaults.get(name, _MISSING)
        params.append(ParamInfo(name, tp, default))
    return params, returns


class CommandSpec:
    """A command's checked signature: validates parameters and results at the boundary."""

    __slots__ = (
        "_exact",
        "_params_type",
        "_result_check",
        "_result_type",
        "blocking",
        "doc",
        "func",
        "is_async",
        "name",
        "owner",
        "params",
        "returns",
        "timeout",
    )

    def __init__(self, owner: type, method: CommandMethod[Any, Any, Any]) -> None:
        self.owner = owner
        self.name = method.name
        self.func = method.func
        self.is_async = method.is_async
        self.blocking = method.blocking
        self.timeout = method.timeout
        self.doc = method.doc
        params, returns = _plain_signature(method.func) or self._read_signature(method)
        self.params: tuple[ParamInfo, ...] = tuple(params)
        self.returns: Any = returns
        self._finish(owner, params)

    def _where(self) -> str:
        """The file and line of the command's ``def``, for a load error (read only then)."""
        return defined_at(self.func)

    def _read_signature(self, method: CommandMethod[Any, Any, Any]) -> tuple[list[ParamInfo], Any]:
        """The general reading, through ``typing`` and ``inspect``: the parameters and the
        return type, or the load error that says what to change."""
        try:
            hints = typing.get_type_hints(method.func, include_extras=True)
        except Exception as exc:
            raise PluginLoadError(
                f"command '{self.name}' has an annotation that cannot be resolved: {exc}",
                where=self._where(),
                hint="import every type used in a command's annotations at module level",
            ) from exc
        params: list[ParamInfo] = []
        for i, p in enumerate(inspect.signature(method.func).parameters.values()):
            if i == 0:
                continue  # self
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise PluginLoadError(
                    f"command '{self.name}' has parameter '{p.name}' of kind {p.kind.description}",
                    where=self._where(),
                    hint="commands take named parameters only: drop *args, **kwargs and '/'",
                )
            if p.name not in hints:
                raise PluginLoadError(
                    f"command '{self.name}' parameter '{p.name}' has no type annotation",
                    where=self._where(),
                    hint=f"annotate it, e.g. '{p.name}: str', so calls can be checked",
                )
            params.append(ParamInfo(p.name, hints[p.name], p.default))
        if "return" not in hints:
            raise PluginLoadError(
                f"command '{self.name}' has no return annotation",
                where=self._where(),
                hint="annotate the return type ('-> None' if it returns nothing)",
            )
        return params, hints["return"]

    def _finish(self, owner: type, params: list[ParamInfo]) -> None:
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
            (p.name, p.annotation) if p.required else (p.name, p.annotation, p.default)
            for p in params
        ]
        self._params_type: Any = msgspec.defstruct(
            f"{owner.__name__}.{self.name}.params",
            fields,
            forbid_unknown_fields=True,
            kw_only=True,
        )
        for label, tp in [("parameters", self._params_type), ("return type", self.returns)]:
            if _plain(params, self.returns):
                # nothing to find in plain scalars: and a worker's start then runs none of
                # msgspec.inspect, whose every object it touches would be a page of its own
                break
            try:
                _check_crosses(tp)
            except (TypeError, ValueError) as exc:
                culprit = _first_uncheckable(params) if label == "parameters" else None
                raise PluginLoadError(
                    f"command '{self.name}' has {label} plugbay cannot check: {culprit or exc}",
                    where=self._where(),
                    hint="use builtins, dataclasses, TypedDicts, enums, Literal, "
                    "msgspec.Struct or containers of them",
                ) from exc
        self._result_check = self._make_result_check(self.returns)
        #: a declared scalar result type: a value of exactly that type needs no check
        self._result_type: Any = self.returns if self.returns in _SCALARS else None
        #: (name, type) of every parameter when all are plain scalars: a call passing
        #: each with exactly that type is already what msgspec would return
        self._exact = _exact_scalars(params)

    # -- the boundary -----------------------------------------------------------------

    def validate_params(
        self, params: Mapping[str, Any], *, plugin: str | None = None, strict: bool = True
    ) -> dict[str, Any]:
        """Checked (and, with ``strict=False``, converted from text/JSON) keyword arguments.

        A ``dict`` that needs nothing done is returned itself, not copied: the caller gives
        it to the call (``host.call``'s ``**params``, a proxy's, a decoded request or
        frame are the call's own; a caller keeping its mapping, as ``call_with`` and
        ``call_many`` do, copies it). Anything else gives a new dict."""
        exact = self._exact
        if exact is not None and len(params) == len(exact):
            # The common call: every parameter given, each of exactly its declared scalar
            # type (a bool is not taken for an int here). Anything else, msgspec judges.
            try:
                for name, tp in exact:
                    if type(params[name]) is not tp:
                        break
                else:
                    # (a copy of a small dict was a twentieth of an inline call)
                    return params if type(params) is dict else dict(params)
            except (KeyError, TypeError):
                pass
        try:
            obj = msgspec.convert(params, self._params_type, strict=strict)
        except msgspec.ValidationError as exc:
            raise self._param_error(str(exc), params, plugin) from None
        except TypeError as exc:  # not a mapping with str keys
            raise ParameterError(
                f"command '{self.name}' takes keyword parameters: {exc}",
                plugin=plugin,
                hint=f"call it as {self.signature()}",
            ) from None
        return msgspec.structs.asdict(obj)

    def validate_result(self, value: Any, *, plugin: str | None = None) -> Any:
        if type(value) is self._result_type:  # (never None: no value's type is None)
            return value
        check = self._result_check
        if check is None:
            return value
        try:
            return check(value)
        except (msgspec.ValidationError, _ResultMismatch) as exc:
            raise ResultTypeError(
                f"command '{self.name}' returned {_type_name(type(value))} "
                f"but is declared to return {_type_name(self.returns)}",
                plugin=plugin,
                where=_path_of(str(exc)) or None,
                hint="fix the plugin so its result matches its declared type: the return "
                f"annotation, or a Wasm plugin's 'returns' in its manifest ({exc}); callers "
                "rely on it",
                details={"command": self.name, "reason": str(exc)},
            ) from None

    @staticmethod
    def _make_result_check(tp: Any) -> Callable[[Any], Any] | None:
        if tp is Any:
            return None
        if tp is None or tp is type(None):

            def check_none(value: Any) -> None:
                if value is not None:
                    raise _ResultMismatch(f"Expected `null`, got `{type(value).__name__}`")

            return check_none
        if tp in _SCALARS:

            def check_scalar(value: Any) -> Any:
                if type(value) is tp:
                    return value
                return msgspec.convert(value, tp, strict=True)

            return check_scalar

        def check_any(value: Any) -> Any:
            return msgspec.convert(value, tp, strict=True, from_attributes=True)

        return check_any

    def _param_error(
        self, text: str, params: Mapping[str, Any], plugin: str | None
    ) -> ParameterError:
        by_name = {p.name: p for p in self.params}
        path = _path_of(text)
        name = path.split(".", 1)[0].split("[", 1)[0] if path else ""
        if text.startswith("Object missing required field"):
            name = text.split("`")[1]
            p = by_name[name]
            msg = (
                f"command '{self.name}' is missing parameter '{name}' ({_type_name(p.annotation)})"
            )
        elif text.startswith("Object contains unknown field"):
            name = text.split("`")[1]
            msg = f"command '{self.name}' has no parameter '{name}'"
        elif name in by_name:
            p = by_name[name]
            given = params.get(name) if isinstance(params, Mapping) else None
            detail = text.split(" - at ", 1)[0]
            msg = (
                f"command '{self.name}' parameter '{name}' expects "
                f"{_type_name(p.annotation)}, got {_type_name(type(given))}"
            )
            if path != name or not detail.startswith("Expected"):
                msg += f" ({detail} at '{path}')"
        else:
            msg = f"command '{self.name}': {text}"
        return ParameterError(
            msg,
            plugin=plugin,
            where=f"{self.name}.{name}" if name else self.name,
            hint=f"call it as {self.signature()}",
            details={"command": self.name, "parameter": name, "reason": text},
        )

    # -- description --------------------------------------------------------------------

    def signature(self) -> str:
        args = ", ".join(p.render() for p in self.params)
        return f"{self.name}({args}) -> {_type_name(self.returns)}"

    def schema(self) -> dict[str, Any]:
        """JSON Schemas of the parameters and the result (for docs, ``--json`` and HTTP)."""
        (params_schema, result_schema), defs = msgspec.json.schema_components(
            [self._params_type, self.returns]
        )
        # The parameters object is this command's own: inline it rather than refer to it.
        ref = params_schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            params_schema = defs.pop(ref[len("#/$defs/") :])
            params_schema.pop("title", None)
        out: dict[str, Any] = {"params": params_schema, "result": result_schema}
        if defs:
            out["$defs"] = defs
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "signature": self.signature(),
            "doc": self.doc,
            "async": self.is_async,
            "blocking": self.blocking,
            "timeout": self.timeout,
            "params": [
                {
                    "name": p.name,
                    "type": _type_name(p.annotation),
                    "required": p.required,
                    **({} if p.required else {"default": _jsonable(p.default)}),
                }
                for p in self.params
            ],
            "returns": _type_name(self.returns),
        }


class _ResultMismatch(Exception):
    pass


def _custom_types(info: msgspec.inspect.Type, seen: set[int] | None = None) -> set[type]:
    """Classes msgspec would only check with isinstance: not serialisable, so refused."""
    seen = set() if seen is None else seen
    if id(info) in seen:
        return set()
    seen.add(id(info))
    if isinstance(info, msgspec.inspect.CustomType):
        return {info.cls}
    found: set[type] = set()
    for attr in ("item_type", "key_type", "value_type"):
        child = getattr(info, attr, None)
        if isinstance(child, msgspec.inspect.Type):
            found |= _custom_types(child, seen)
    for attr in ("types", "item_types"):
        for child in getattr(info, attr, ()) or ():
            found |= _custom_types(child, seen)
    for f in getattr(info, "fields", ()) or ():
        found |= _custom_types(f.type, seen)
    return found


def _path_of(text: str) -> str:
    if " - at `$" not in text:
        return ""
    return text.rsplit(" - at `$", 1)[1].rstrip("`").lstrip(".")


def _jsonable(value: Any) -> Any:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError):
        return repr(value)
    return value


def command_specs(cls: type) -> dict[str, CommandSpec]:
    """Every command of a plugin class, checked once and cached on the class.

    Raises :class:`PluginLoadError` naming the command and parameter when a
    signature cannot be checked, so bad plugins are refused when loaded.
    """
    cached = cls.__dict__.get("__plugbay_specs__")
    if cached is not None:
        return typing.cast(dict[str, CommandSpec], cached)
    specs: dict[str, CommandSpec] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, CommandMethod) and not value.is_event:
                specs[value.name] = CommandSpec(cls, value)
    type.__setattr__(cls, "__plugbay_specs__", specs)
    return specs
