"""Hostile files: every manifest, pyproject table, wheel and state file, however malformed,
deep or large, gives a clear PlugbayError naming the file — never a traceback.

Property-based (hypothesis): each example mutates a valid file, then runs every command
that reads it in-process (typer's CliRunner) and checks that the command either works or
fails with one paragraph that names the file. A few run through the real ``plugbay``.
"""

from __future__ import annotations

import io
import re
import shutil
import sqlite3
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from plugbay.api.errors import ManifestError, PlugbayError
from plugbay.cli.app import app
from plugbay.model.manifest import MAX_MANIFEST_BYTES, load_manifest
from plugbay.pdk.errors import WheelError
from plugbay.pdk.wheels import inspect_wheel, record_hash
from tests._cli import plugbay

CODE = """\
from plugbay import UtilityPlugin, command


class P(UtilityPlugin):
    @command
    def add(self, a: int, b: int = 1) -> int:
        return a + b
"""

MANIFEST = """\
id = "acme.calc"
version = "1.0.0"
type = "utility"
entry = "main:P"
description = "adds numbers"
capabilities = ["math"]
isolation = "process"

[dependencies]
"acme.base" = ">=1.0"

[config.level]
type = "string"
default = "info"
enum = ["info", "debug"]

[resources]
memory = "64MiB"
timeout = 5
"""

PYPROJECT = """\
[project]
name = "acme-calc"
version = "1.0.0"

[project.entry-points."plugbay.plugins"]
"acme.calc" = "main:P"

[tool.plugbay]
""" + MANIFEST.replace("[dependencies]", "[tool.plugbay.dependencies]").replace(
    "[config.level]", "[tool.plugbay.config.level]"
).replace("[resources]", "[tool.plugbay.resources]")

BASE = 'id = "acme.base"\nversion = "1.2.0"\ntype = "utility"\nentry = "main:P"\n'

# ---------------------------------------------------------------------------- mutations

#: TOML values of every kind, odd ones first
_ODD: list[str] = [
    '""',
    "nan",
    "-inf",
    "1979-05-27T07:32:00Z",
    "true",
    "[]",
    "{}",
    '"\\u0000"',
    '"' + "x" * 5000 + '"',
    '[1, "a", {b = 2}]',
    "'''\n'''",
]
_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(_ODD),
    st.text(max_size=40).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
)


@st.composite
def _deep(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=1, max_value=3000))
    kind = draw(st.sampled_from(["array", "inline", "header", "dotted"]))
    if kind == "array":
        return "description = " + "[" * depth + "]" * depth
    if kind == "inline":
        return "description = " + "{a = " * depth + "1" + "}" * depth
    if kind == "header":
        return "[config." + ".".join(["a"] * depth) + "]\ntype = 1"
    return "x" + ".y" * depth + " = 1"


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """``text`` after a few edits: bytes, lines, values, nesting, size."""
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        lines = bytes(data).split(b"\n")
        op = draw(
            st.sampled_from(
                ["flip", "delete", "insert", "line", "value", "deep", "huge", "truncate"]
            )
        )
        at = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(min_value=0, max_value=255))
        elif op == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=20))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=20))
        elif op == "line":
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
            data = bytearray(b"\n".join(lines))
        elif op == "value":
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            if b"=" in lines[i]:
                key = lines[i].split(b"=", 1)[0]
                lines[i] = key + b"= " + draw(_VALUES).encode()
            data = bytearray(b"\n".join(lines))
        elif op == "deep":
            i = draw(st.integers(min_value=0, max_value=len(lines)))
            lines.insert(i, draw(_deep()).encode())
            data = bytearray(b"\n".join(lines))
        elif op == "huge":
            data += b'\nname = "' + b"x" * (MAX_MANIFEST_BYTES + 1) + b'"\n'
        elif op == "truncate":
            del data[at:]
    return bytes(data)


# ---------------------------------------------------------------------------- the check

runner = CliRunner()


def run(*args: str, cwd: Path) -> Result:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setenv("COLUMNS", "400")
        return runner.invoke(app, list(args))


def assert_clear(result: Result, *names: str) -> None:
    """Worked, or failed with one paragraph (exit 1, 2 for usage); never a traceback.
    When it failed, what it printed names one of ``names`` (the file that is wrong)."""
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        pytest.fail(
            "a traceback instead of a PlugbayError:\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        )
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output, result.output
    if result.exit_code == 1 and names:
        assert any(n in result.output for n in names), result.output


def manifest_problem(path: Path) -> PlugbayError | None:
    """What load_manifest says of ``path``: None, or a ManifestError (nothing else)."""
    problem = raised(lambda: load_manifest(path))
    if problem is None:
        return None
    assert isinstance(problem, ManifestError), f"{type(problem).__name__}: {problem}"
    assert str(path) in (problem.where or ""), problem
    return problem


def raised(fn: Callable[[], object]) -> BaseException | None:
    """What ``fn`` raised, if anything (the property checks its type)."""
    try:
        fn()
    except Exception as exc:
        return exc
    return None


def plugin_tree(root: Path) -> Path:
    """A plugins directory with acme.base (good) and acme.calc (to be mutated)."""
    shutil.rmtree(root, ignore_errors=True)
    for name, manifest in (("acme.base", BASE), ("acme.calc", MANIFEST)):
        d = root / "plugins" / name
        d.mkdir(parents=True)
        (d / "plugin.toml").write_text(manifest)
        (d / "main.py").write_text(CODE)
    return root / "plugins" / "acme.calc"


SLOW = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FAST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---------------------------------------------------------------------------- manifests


@FAST
@given(data=mutated(MANIFEST))
def test_a_mutated_manifest_is_a_manifest_error_naming_the_file(
    tmp_path: Path, data: bytes
) -> None:
    path = plugin_tree(tmp_path / "w") / "plugin.toml"
    path.write_bytes(data)
    manifest_problem(path)
    assert_clear(
        run("validate", "--no-import", str(path.parent), cwd=tmp_path / "w"), "plugin.toml"
    )


def test_a_table_header_thousands_of_tables_deep_is_a_manifest_error(tmp_path: Path) -> None:
    """Found by the property above: ``[config.a.a.a…]`` two thousand deep made the fast
    reader recurse past Python's limit (a RecursionError, and a traceback in validate)."""
    path = plugin_tree(tmp_path / "w") / "plugin.toml"
    path.write_text(
        MANIFEST.replace("[dependencies]", "[config" + ".a" * 5000 + "]\n[dependencies]")
    )
    problem = manifest_problem(path)
    assert problem is not None and "unknown field 'config.a.a'" in str(problem)
    assert_clear(
        run("validate", "--no-import", str(path.parent), cwd=tmp_path / "w"), "plugin.toml"
    )


@FAST
@given(data=mutated(PYPROJECT))
def test_a_mutated_pyproject_table_is_a_manifest_error_naming_the_file(
    tmp_path: Path, data: bytes
) -> None:
    calc = plugin_tree(tmp_path / "w")
    (calc / "plugin.toml").unlink()
    (calc / "pyproject.toml").write_bytes(data)
    manifest_problem(calc / "pyproject.toml")
    assert_clear(run("validate", "--no-import", str(calc), cwd=tmp_path / "w"), "pyproject.toml")
    assert_clear(run("deps", cwd=tmp_path / "w"), "pyproject.toml")


@settings(SLOW, max_examples=15)
@given(data=mutated(MANIFEST))
def test_every_command_that_reads_manifests_survives_a_mutated_one(
    tmp_path: Path, data: bytes
) -> None:
    work = tmp_path / "w"
    path = plugin_tree(work) / "plugin.toml"
    path.write_bytes(data)
    problem = manifest_problem(path)
    for args in (["deps"], ["list"], ["info", "acme.base"]):
        result = run(*args, cwd=work)
        assert_clear(result, "plugin.toml", "acme.calc")
        if problem is not None and args != ["info", "acme.base"]:
            # the tools say which file is wrong
            assert "plugin.toml" in result.output, (args, result.output)
    # a real host, in a process of its own (a host in this one would leave the address
    # space the limits tests fork from larger than they measure)
    started = plugbay("run", "--once", cwd=work)
    both = started.stdout + started.stderr
    assert "Traceback" not in both and started.returncode in (0, 1), both
    if problem is not None:
        assert "plugin.toml" in both, both
        assert re.search(r"acme\.base\s*│\s*1\.2\.0\s*│\s*utility\s*│\s*active", both), both


@pytest.mark.parametrize(
    "line",
    [
        "description = " + "[" * 500 + "]" * 500,
        "description = " + "{a = " * 500 + "1" + "}" * 500,
        '[config.x]\ntype = "array"\ndefault = ' + "[" * 500 + "]" * 500,
        "[" + ".".join(["a"] * 500) + "]\nx = 1",
    ],
    ids=["arrays", "inline-tables", "config-default", "tables"],
)
def test_a_manifest_nested_500_deep_is_refused_by_the_real_command(
    tmp_path: Path, line: str
) -> None:
    path = plugin_tree(tmp_path) / "plugin.toml"
    path.write_text(MANIFEST + line + "\n")
    commands = (["validate", "plugins/acme.calc"], ["list"], ["deps"], ["run", "--once"])
    for args in commands:
        result = plugbay(*args, cwd=tmp_path)
        assert "Traceback" not in result.stdout + result.stderr, (args, result.stderr)
        assert "plugin.toml" in result.stdout + result.stderr, (args, result.stdout)
    listed = plugbay("list", cwd=tmp_path)
    assert "acme.base" in listed.stdout


def test_a_huge_manifest_is_refused_unread(tmp_path: Path) -> None:
    path = plugin_tree(tmp_path) / "plugin.toml"
    path.write_text(MANIFEST + 'name = "' + "x" * (MAX_MANIFEST_BYTES + 1) + '"\n')
    with pytest.raises(ManifestError, match="is larger than 1,048,576 bytes; refused unread"):
        load_manifest(path)


# ---------------------------------------------------------------------------- wheels


def wheel_files(manifest: str = BASE.replace("main:P", "acme_base.main:P")) -> dict[str, bytes]:
    return {
        "acme_base/__init__.py": b"",
        "acme_base/main.py": CODE.encode(),
        "acme_base/plugin.toml": manifest.encode(),
        "acme_base-1.2.0.dist-info/METADATA": b"Name: acme-base\nVersion: 1.2.0\n",
        "acme_base-1.2.0.dist-info/entry_points.txt": (
            b"[plugbay.plugins]\nacme.base = acme_base.main:P\n"
        ),
    }


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    info = "acme_base-1.2.0.dist-info"
    record = [f"{n},{record_hash(d)},{len(d)}" for n, d in files.items()]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return buf.getvalue()


WHEEL_NAME = "acme_base-1.2.0-py3-none-any.whl"


@st.composite
def mutated_wheel(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "manifest", "member", "bomb"]))
    if kind == "manifest":  # a hostile manifest inside a wheel whose RECORD is right
        text = draw(mutated(BASE.replace("main:P", "acme_base.main:P"))).decode("utf-8", "replace")
        return zip_bytes(wheel_files(text))
    if kind == "member":  # a hostile entry_points.txt, METADATA or RECORD
        files = wheel_files()
        name = draw(st.sampled_from(sorted(files)))
        files[name] = draw(mutated(files[name].decode()))
        return zip_bytes(files)
    if kind == "bomb":  # a manifest of 64 MiB of zeros that compresses to almost nothing
        files = wheel_files()
        files["acme_base/plugin.toml"] = b"#" + b"\0" * (64 << 20)
        return zip_bytes(files)
    data = bytearray(zip_bytes(wheel_files()))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.integers(min_value=0, max_value=255))
        else:
            del data[at:]
            break
    return bytes(data)


@SLOW
@given(data=mutated_wheel())
def test_a_mutated_wheel_is_a_wheel_error_naming_the_file(tmp_path: Path, data: bytes) -> None:
    shutil.rmtree(tmp_path / "w", ignore_errors=True)
    (tmp_path / "w").mkdir()
    wheel = tmp_path / "w" / WHEEL_NAME
    wheel.write_bytes(data)
    problem = raised(lambda: inspect_wheel(wheel))
    if problem is not None:
        assert isinstance(problem, WheelError), f"{type(problem).__name__}: {problem}"
        assert WHEEL_NAME in (problem.where or ""), problem
    for args in (["verify", WHEEL_NAME], ["install", WHEEL_NAME, "--allow-unsigned"]):
        assert_clear(run(*args, cwd=tmp_path / "w"), WHEEL_NAME)


def test_a_good_wheel_installs_so_the_check_above_can_fail(tmp_path: Path) -> None:
    (tmp_path / WHEEL_NAME).write_bytes(zip_bytes(wheel_files()))
    result = run("install", WHEEL_NAME, "--allow-unsigned", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "installed acme.base 1.2.0" in result.output


# ---------------------------------------------------------------------------- state files


@pytest.fixture(scope="module")
def state_db(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real state database with history in it, checkpointed into one file."""
    from plugbay.state import StateStore

    root = tmp_path_factory.mktemp("state")
    with StateStore.open(root) as store:
        for i in range(50):
            store.add_event("acme.base", "load", version="1.2.0", reason=f"event {i}")
        store.set_enabled("acme.calc", False, "maintenance")
    db = sqlite3.connect(root / "state.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return (root / "state.db").read_bytes()


#: damage to a database file, as (kind, offset, byte values); applied by ``damage``
_DAMAGE = st.tuples(
    st.sampled_from(["flip", "page", "truncate", "empty"]),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.lists(st.integers(min_value=0, max_value=255), min_size=1, max_size=20),
)


def damage(original: bytes, how: tuple[str, float, list[int]]) -> bytes:
    kind, where, values = how
    data = bytearray(original)
    at = int(where * len(data))
    if kind == "empty":
        return b""
    if kind == "truncate":
        return bytes(data[: max(at, 1)])
    if kind == "page":  # a whole page of garbage, as a torn write leaves
        page = at // 4096 * 4096
        data[page : page + 4096] = bytes(values[i % len(values)] ^ i % 251 for i in range(4096))
        return bytes(data)
    for i, v in enumerate(values):  # bytes flipped here and there
        data[(at + i * 7919) % len(data)] = v
    return bytes(data)


def _state_commands() -> list[list[str]]:
    return [["history"], ["history", "acme.base"], ["alerts"], ["logs", "acme.base"]]


@SLOW
@given(how=_DAMAGE, host_file=st.binary(max_size=200))
def test_a_damaged_state_file_is_a_state_error_naming_it(
    tmp_path: Path, state_db: bytes, how: tuple[str, float, list[int]], host_file: bytes
) -> None:
    work = tmp_path / "w"
    plugin_tree(work)
    shutil.rmtree(work / ".plugbay", ignore_errors=True)
    (work / ".plugbay").mkdir()
    (work / ".plugbay" / "state.db").write_bytes(damage(state_db, how))
    for args in _state_commands():
        assert_clear(run(*args, cwd=work), "state.db")
    (work / ".plugbay" / "host.json").write_bytes(host_file)
    assert_clear(run("history", cwd=work), "state.db", "host.json")
