"""``plugbay new``: each template gives a package that, untouched, passes its own tests,
``plugbay validate``, mypy --strict and ruff, and loads into a host."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from plugbay.pdk import TemplateError, create_plugin
from plugbay.runtime.host import Host

BIN = Path(sys.executable).parent
CALLS = {
    "utility": ("greet", {"name": "Ada"}, "Hello, Ada!"),
    "system": ("counts_by_kind", {}, None),
    # not trusted by this host, so sandboxed: connecting without a grant is denied
    "integration": ("open", {}, None),
    "extension": ("feature_ids", {}, ["word-count", "top-words"]),
}


def run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.mark.slow
@pytest.mark.parametrize("template", ["utility", "system", "integration", "extension"])
async def test_generated_package_passes_everything_untouched(
    template: str, tmp_path: Path, mypy_cache: Path
) -> None:
    plugin_id = f"acme.{template}-demo"
    package = create_plugin(template, plugin_id, tmp_path / "plugins" / f"{template}-demo")
    files = {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()}
    module = f"acme_{template}_demo"
    assert {
        "pyproject.toml", "README.md", f"{module}/plugin.py", f"{module}/__init__.py",
        f"{module}/py.typed", "tests/test_plugin.py",
    } <= files  # fmt: skip
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points."plugbay.plugins"]' in pyproject
    assert "[tool.plugbay]" in pyproject and "[tool.plugbay.config." in pyproject
    # every template shows the plugin author's day: storage, an event, a background task
    code = (package / module / "plugin.py").read_text()
    for used in ("context.storage", "context.events.emit(", "@on_event(", "context.tasks.spawn("):
        assert used in code, f"the {template} template does not use {used}"
    assert "[tool.plugbay.events]" in pyproject and "[tool.plugbay.events.listens." in pyproject

    tests = run(BIN / "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout

    validate = run(BIN / "plugbay", "validate", ".", cwd=package)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "0 errors, 0 warnings" in validate.stdout

    mypy = run(BIN / "mypy", "--strict", "--cache-dir", mypy_cache, cwd=package)
    assert mypy.returncode == 0, mypy.stdout
    lint = run(BIN / "ruff", "check", ".", cwd=package)
    assert lint.returncode == 0, lint.stdout
    fmt = run(BIN / "ruff", "format", "--check", ".", cwd=package)
    assert fmt.returncode == 0, fmt.stdout

    # the plugins directory holding the package is what a host is pointed at
    async with Host(tmp_path / "plugins", state_dir=tmp_path / "state", entry_points=False) as host:
        assert str(host.plugin(plugin_id).state) == "active", host.plugin(plugin_id).reason
        command, params, expected = CALLS[template]
        if template == "integration":
            with pytest.raises(Exception, match="the sandbox denied"):
                await host.call(plugin_id, command, **params)
        elif expected is None:
            assert isinstance(await host.call(plugin_id, command, **params), dict)
        else:
            assert await host.call(plugin_id, command, **params) == expected


def test_new_from_the_command_line(tmp_path: Path) -> None:
    result = run(BIN / "plugbay", "new", "--type", "extension", "acme.words", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "acme-words" / "acme_words" / "plugin.py").is_file()
    assert "created acme.words (extension)" in result.stdout
    # made as a mkdir there would be (it was 0700, from the scratch directory)
    umask = os.umask(0o022)
    os.umask(umask)
    made = stat.S_IMODE((tmp_path / "acme-words").stat().st_mode)
    assert made == 0o777 & ~umask, oct(made)


def test_new_refuses_a_non_empty_directory_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = run(BIN / "plugbay", "new", "acme.x", "--dir", target, cwd=tmp_path)
    assert result.returncode == 1
    assert "the target directory is not empty" in result.stderr and str(target) in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no scratch left behind


def test_new_into_an_empty_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert (create_plugin("utility", "acme.x", tmp_path / "empty") / "pyproject.toml").is_file()


def test_unknown_template_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    result = run(BIN / "plugbay", "new", "--type", "sytem", "acme.x", cwd=tmp_path)
    assert result.returncode == 1
    assert "there is no template 'sytem'" in result.stderr
    assert "did you mean 'system'?" in result.stderr
    assert "utility, system, integration, extension" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["Acme.Greeter", "acme..x", "1acme", "acme greeter"])
def test_bad_plugin_id(tmp_path: Path, bad: str) -> None:
    with pytest.raises(TemplateError, match="is not a valid plugin id"):
        create_plugin("utility", bad, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("lang", ["python", "c"])
def test_an_id_with_no_dot_is_refused_with_a_dotted_suggestion(tmp_path: Path, lang: str) -> None:
    result = run(BIN / "plugbay", "new", "greeter", "--lang", lang, cwd=tmp_path)
    assert result.returncode == 1
    said = " ".join(result.stderr.split())
    assert "'greeter' is not a dotted plugin id" in said
    assert "e.g. 'plugbay new acme.greeter'" in said
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TemplateError, match="not a dotted plugin id"):
        create_plugin("utility", "greeter", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_target_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(TemplateError, match="the target is a file"):
        create_plugin("utility", "acme.x", tmp_path / "f")
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.parametrize("template", ["utility", "system", "integration", "extension"])
def test_readme_lists_every_command_and_says_where_install_puts_it(
    template: str, tmp_path: Path
) -> None:
    package = create_plugin(template, "acme.demo", tmp_path / "demo")
    readme = (package / "README.md").read_text()
    code = (package / "acme_demo" / "plugin.py").read_text()
    commands = re.findall(r"@command\b[^\n]*\n\s+(?:async )?def (\w+)\(", code)
    assert commands
    (listed,) = [line for line in readme.splitlines() if line.startswith("Commands: ")]
    assert [name for name in commands if f"`{name}(" not in listed] == []
    assert "installed into ./plugins" not in readme
    assert "verified, then installed in .plugbay/store/" in readme
