"""The plugin author's API: exported surface, commands and the call boundary."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import plugbay
from plugbay import (
    Command,
    ParameterError,
    Plugin,
    PluginLoadError,
    ResultTypeError,
    UtilityPlugin,
    command,
    command_specs,
)

EXPORTED = {
    "PLUGIN_TYPES", "Command", "CommandMethod", "CommandNotFound", "CommandSpec", "ConfigError",
    "DependencyCycleError", "DependentsError", "DuplicatePluginError", "EndpointConfig",
    "Environment", "ExtensionPlugin", "Feature", "Host", "HostLockedError", "HostStateError", "HookConfig", "IntegrationPlugin", "ManifestError",
    "Message", "MetricsCollector", "MissingDependencyError", "ParamInfo", "ParameterError",
    "PlugbayError", "Plugin", "PluginCallError", "PluginConfig", "PluginContext",
    "PluginDependency", "PluginInitError", "PluginLoadError", "PluginNotFound", "PluginReloadError",
    "PluginCrashed", "PluginStateError", "PluginTimeout", "PluginType", "RangeError", "ResolutionError",
    "ResultTypeError", "ServiceError", "ServiceRegistry", "Secrets", "PermissionDenied",
    "ResourceLimitExceeded", "StateError", "Storage", "StorageFull", "TaskInfo", "Tasks", "MetricError", "SystemConfig",
    "SystemEvent", "SystemHook", "SystemInfo", "SystemPlugin", "UtilityPlugin", "VersionError",
    "__version__", "command", "command_specs", "error_from_dict", "Events", "on_event", "many",
}  # fmt: skip


def test_public_surface_changes_only_on_purpose() -> None:
    assert set(plugbay.__all__) == EXPORTED
    for name in EXPORTED:
        assert hasattr(plugbay, name), name


def test_the_version_is_written_once_in_the_package_metadata() -> None:
    import importlib.metadata

    from plugbay.runtime.host import HOST_VERSION

    assert plugbay.__version__ == importlib.metadata.version("plugbay") == HOST_VERSION


def test_host_is_exported_but_importing_plugbay_does_not_load_the_runtime() -> None:
    code = (
        "import sys, plugbay; assert 'plugbay.runtime.host' not in sys.modules; "
        "from plugbay import Host; print(Host.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "plugbay.runtime.host"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Calc(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b

    @command
    async def scale(self, p: Point, factor: float) -> Point:
        return Point(int(p.x * factor), int(p.y * factor))

    @command
    def liar(self) -> int:
        return "not an int"  # type: ignore[return-value]

    @command
    def tags(self, names: list[str]) -> dict[str, int]:
        return {n: len(n) for n in names}


def spec(name: str) -> plugbay.CommandSpec:
    return command_specs(Calc)[name]


def test_valid_parameters_pass_and_defaults_fill_in() -> None:
    assert spec("add").validate_params({"a": 2}) == {"a": 2, "b": 1}


def test_wrong_type_names_parameter_expected_and_given() -> None:
    with pytest.raises(ParameterError) as err:
        spec("add").validate_params({"a": "2"})
    assert str(err.value).startswith(
        "command 'add' parameter 'a' expects int, got str (at add.a). call it as add(a: int, b: int = 1) -> int"
    )


def test_missing_and_extra_parameters_are_named() -> None:
    with pytest.raises(ParameterError, match=r"command 'add' is missing parameter 'a' \(int\)"):
        spec("add").validate_params({})
    with pytest.raises(ParameterError, match=r"command 'add' has no parameter 'c'"):
        spec("add").validate_params({"a": 1, "c": 3})


def test_nested_types_are_checked_with_a_path() -> None:
    with pytest.raises(ParameterError) as err:
        spec("tags").validate_params({"names": ["a", 3]})
    assert "parameter 'names' expects list[str], got list" in str(err.value)
    assert "names[1]" in str(err.value)


def test_lax_mode_converts_text_from_the_command_line() -> None:
    assert spec("add").validate_params({"a": "2", "b": "5"}, strict=False) == {"a": 2, "b": 5}
    assert spec("scale").validate_params({"p": {"x": 1, "y": 2}, "factor": "2"}, strict=False) == {
        "p": Point(1, 2),
        "factor": 2.0,
    }


def test_result_of_wrong_type_is_an_error() -> None:
    with pytest.raises(ResultTypeError) as err:
        spec("liar").validate_result("not an int", plugin="calc")
    assert str(err.value).startswith(
        "plugin 'calc': command 'liar' returned str but is declared to return int"
    )
    assert spec("scale").validate_result(Point(1, 2)) == Point(1, 2)


def test_signature_and_schema_describe_the_command() -> None:
    assert spec("add").signature() == "add(a: int, b: int = 1) -> int"
    schema = spec("scale").schema()
    assert schema["params"]["required"] == ["p", "factor"]
    assert schema["params"]["properties"]["factor"] == {"type": "number"}
    assert schema["params"]["additionalProperties"] is False
    assert schema["result"] == {"$ref": "#/$defs/Point"}
    assert schema["$defs"]["Point"]["required"] == ["x", "y"]


async def test_instance_commands_are_awaitable_whether_def_or_async() -> None:
    calc = Calc()
    assert await calc.add(a=1, b=2) == 3
    assert await calc.scale(Point(1, 1), 3.0) == Point(3, 3)


async def test_execute_dispatches_a_typed_command() -> None:
    calc = Calc()
    assert await calc.execute(Calc.add.request(a=40, b=2)) == 42
    with pytest.raises(plugbay.CommandNotFound, match="no command 'nope'"):
        await calc.execute(Command("nope"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def f(self, x) -> int: return 1", "command 'f' parameter 'x' has no type annotation"),
        ("def f(self, x: int): return 1", "command 'f' has no return annotation"),
        (
            "def f(self, *xs: int) -> int: return 1",
            "command 'f' has parameter 'xs' of kind variadic",
        ),
        (
            "def f(self, x: 'Undefined') -> int: return 1",
            "command 'f' has an annotation that cannot be resolved",
        ),
        (
            "def f(self, x: object) -> int: return 1",
            "command 'f' has parameters plugbay cannot check",
        ),
        # scalar parameters skip the look inside types; the result is still looked at
        (
            "def f(self, x: int, y: str = '') -> list[object]: return []",
            "command 'f' has return type plugbay cannot check",
        ),
        (
            "def f(self, x: int, y: list[object]) -> int: return 1",
            "command 'f' has parameters plugbay cannot check",
        ),
    ],
)
def test_bad_command_signatures_are_refused_when_registered(body: str, message: str) -> None:
    namespace: dict[str, object] = {"command": command, "UtilityPlugin": UtilityPlugin}
    exec(f"class Bad(UtilityPlugin):\n    @command\n    {body}\n", namespace)
    with pytest.raises(PluginLoadError) as err:
        command_specs(namespace["Bad"])  # type: ignore[arg-type]
    assert message in str(err.value)


def test_errors_pickle_and_round_trip_through_dicts() -> None:
    import pickle

    err = ParameterError("bad", plugin="p", where="x", hint="fix it", details={"k": 1})
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ParameterError
    assert str(again) == str(err) == "plugin 'p': bad (at x). fix it"
    assert type(plugbay.error_from_dict(err.to_dict())) is ParameterError


def test_mypy_flags_a_wrong_call_through_the_typed_proxy(tmp_path: Path) -> None:
    snippet = tmp_path / "caller.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from plugbay import UtilityPlugin, command
            from plugbay.runtime.host import Host

            class Greeter(UtilityPlugin):
                @command
                def greet(self, name: str, times: int = 1) -> str:
                    return name * times

            async def main(host: Host) -> None:
                greeter = host.get(Greeter)
                ok: str = await greeter.greet(name="ada")
                await greeter.greet(name=3)
                await greeter.greet(name="ada", loud=True)
                wrong: int = await greeter.greet("ada")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert (
        'caller.py:13: error: Argument "name" to "greet" of "Greeter" has incompatible type "int"; expected "str"'
        in out
        or (
            'caller.py:13: error: Argument "name" has incompatible type "int"; expected "str"'
            in out
        )
    ), out
    assert 'caller.py:14: error: Unexpected keyword argument "loud"' in out, out
    assert "caller.py:15: error: Incompatible types in assignment" in out, out
    assert "caller.py:12" not in out, out
    assert "Found 3 errors" in out, out


def test_plugin_base_is_importable_without_the_host() -> None:
    code = "import sys, plugbay.api; bad = [m for m in ('plugbay.runtime.host','plugbay.runtime.manager','typer','fastapi') if m in sys.modules]; print(bad)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_plugin_subclass_without_overrides_is_concrete() -> None:
    class Nothing(Plugin):
        pass

    Nothing()
