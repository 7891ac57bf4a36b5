"""A plain command's signature is read straight off its function (``_plain_signature``):
the same parameters, types, defaults and result ``typing`` and ``inspect`` give, and
anything that is not plain still takes the general reading and its errors."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import pytest

from plugbay import ParameterError, PluginLoadError, UtilityPlugin, command, command_specs
from plugbay.api import _command

PLAIN = {
    "future": """
        from __future__ import annotations
        from typing import Any

        def f(self, a: int, b: str = "x", *, c: float, d: bool = True) -> bytes: ...
        def g(self) -> None: ...
        def h(self, a: bytes, b: int = 3) -> Any: ...
        def k(self, *, only: str = "k") -> bool: ...
    """,
    "evaluated": """
        from typing import Any

        def f(self, a: int, b: str = "x", *, c: float, d: bool = True) -> bytes: ...
        def g(self) -> None: ...
        def h(self, a: bytes, b: int = 3) -> Any: ...
        def k(self, *, only: str = "k") -> bool: ...
    """,
}

NOT_PLAIN = """
    from __future__ import annotations
    import functools
    from typing import Optional

    class int:  # a module's own 'int' is what its string annotations name
        pass

    def shadowed(self, a: int) -> None: ...
    def optional(self, a: Optional[str]) -> None: ...
    def container(self, a: list[str]) -> str: ...
    def none_param(self, a: None) -> str: ...
    def unannotated(self, a) -> str: ...
    def no_return(self, a: str): ...
    def star(self, *a: str) -> str: ...
    def stars(self, **a: str) -> str: ...
    def positional(self, a: str, /) -> str: ...
    def unresolved(self, a: Missing) -> str: ...

    def _inner(self, a: str) -> str: ...
    @functools.wraps(_inner)
    def wrapped(self, *args, **kwargs): ...
"""


def _functions(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), "<plugin>", "exec"), namespace)
    return {
        name: value
        for name, value in namespace.items()
        if inspect.isfunction(value) and not name.startswith("_")
    }


def _general(func: Any) -> tuple[list[tuple[str, Any, Any]], Any]:
    hints = typing.get_type_hints(func, include_extras=True)
    params = list(inspect.signature(func).parameters.values())[1:]
    return [(p.name, hints[p.name], p.default) for p in params], hints["return"]


@pytest.mark.parametrize("style", sorted(PLAIN))
def test_a_plain_signature_reads_as_typing_and_inspect_read_it(style: str) -> None:
    for name, func in _functions(PLAIN[style]).items():
        plain = _command._plain_signature(func)
        assert plain is not None, name
        params, returns = plain
        assert ([(p.name, p.annotation, p.default) for p in params], returns) == _general(func)


def test_anything_not_plain_takes_the_general_reading() -> None:
    functions = _functions(NOT_PLAIN)
    assert len(functions) == 11
    for name, func in functions.items():
        assert _command._plain_signature(func) is None, name


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def c(self, a: Missing) -> str: ...", "cannot be resolved"),
        ("def c(self, a) -> str: ...", "has no type annotation"),
        ("def c(self, a: str): ...", "has no return annotation"),
        ("def c(self, *a: str) -> str: ...", "of kind variadic positional"),
        ("def c(self, a: str, /) -> str: ...", "of kind positional-only"),
    ],
)
def test_the_general_readings_errors_are_unchanged(body: str, message: str) -> None:
    namespace: dict[str, Any] = {"UtilityPlugin": UtilityPlugin, "command": command}
    source = f"class P(UtilityPlugin):\n    @command\n    {body}\n"
    exec(compile(source, "<plugin>", "exec"), namespace)
    with pytest.raises(PluginLoadError, match=message):
        command_specs(namespace["P"])


def test_a_plain_command_checks_calls_and_describes_itself_as_before() -> None:
    class P(UtilityPlugin):
        @command
        def f(self, a: int, *, b: str = "x") -> bool:
            """Say yes."""
            return True

        @command
        async def g(self) -> None:
            """Two lines.

            The second.
            """

    specs = command_specs(P)
    f, g = specs["f"], specs["g"]
    assert f.signature() == "f(a: int, b: str = 'x') -> bool"
    assert f.validate_params({"a": 1}) == {"a": 1, "b": "x"}
    with pytest.raises(ParameterError, match="parameter 'a' expects int, got str"):
        f.validate_params({"a": "1"})
    assert f.validate_params({"a": "1"}, strict=False) == {"a": 1, "b": "x"}
    assert (f.doc, f.is_async) == ("Say yes.", False)
    assert (g.doc, g.is_async, g.signature()) == ("Two lines.\n\nThe second.", True, "g() -> None")
    assert f.doc == inspect.cleandoc(P.f.func.__doc__ or "")


@pytest.mark.parametrize(
    "doc",
    ["", "   ", "One line.", "  One line.  ", "\tTabbed\tline ", "Two\n  lines.", "\n  Below.\n"],
)
def test_a_docstring_is_cleaned_as_inspect_cleans_it(doc: str) -> None:
    assert _command._cleandoc(doc) == inspect.cleandoc(doc)


def test_a_sandboxed_worker_loads_a_plain_plugin_without_running_inspect_or_typing(
    tmp_path: Path,
) -> None:
    """Where the reading runs on a worker's start: importing a plain plugin and checking
    its class (``import_plugin``, the worker's own step) calls no function of ``inspect``
    or ``typing`` (each would copy pages of the zygote's)."""
    (tmp_path / "plugin.toml").write_text(
        'id = "t.plain"\nversion = "1.0.0"\ntype = "utility"\nentry = "p:P"\n'
    )
    (tmp_path / "p.py").write_text(
        textwrap.dedent(
            '''
            from plugbay import UtilityPlugin, command

            class P(UtilityPlugin):
                @command
                def echo(self, x: int, label: str = "") -> int:
                    """Echo."""
                    return x
            '''
        )
    )
    probe = textwrap.dedent(
        f"""
        import inspect, sys, typing
        from pathlib import Path
        from plugbay.isolation.loading import import_plugin
        from plugbay.model.manifest import load_manifest
        manifest = load_manifest(Path({str(tmp_path / "plugin.toml")!r}))
        watched = {{inspect.__file__, typing.__file__}}
        seen = set()
        def profile(frame, event, arg):
            if event == "call" and frame.f_code.co_filename in watched:
                seen.add(frame.f_code.co_name)
        sys.setprofile(profile)
        code = import_plugin(manifest)
        sys.setprofile(None)
        echo = code.commands["echo"]
        assert echo.signature() == "echo(x: int, label: str = '') -> int", echo
        print(sorted(seen))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
