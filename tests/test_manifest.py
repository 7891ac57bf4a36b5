"""Manifests: every field parsed and validated, every mistake explained, no code imported."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugbay.api.errors import ConfigError, ManifestError, PlugbayError
from plugbay.model.manifest import load_manifest, manifest_from_mapping, parse_manifest, parse_size

FULL = """
id = "acme.full"
version = "1.2.3-rc.1+b5"
type = "extension"
entry = "pkg.mod:Thing"
name = "Full"
description = "Everything"
capabilities = ["a", "b"]
host = ">=0.1 <1"
isolation = "process"

[dependencies]
"system.logging" = "^1.0"

[optional-dependencies]
"utility.formatters" = ">=1,<2"

[services]
provides = { conversation = "1.0.0" }
requires = { formatting = "~1.1" }

[config.level]
type = "string"
default = "info"
enum = ["info", "debug"]

[config.limit]
type = "integer"
default = 5
minimum = 1
maximum = 10

[permissions]
network = ["127.0.0.1:8080"]
env = ["HOME"]
subprocess = true

[resources]
memory = "256MiB"
timeout = 2.5
"""


def write(tmp_path: Path, text: str, name: str = "plugin.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_full_manifest_parses_every_field(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, FULL))
    assert (m.id, str(m.version), m.type, m.module, m.attribute) == (
        "acme.full", "1.2.3-rc.1+b5", "extension", "pkg.mod", "Thing"
    )  # fmt: skip
    assert str(m.dependencies["system.logging"]) == "^1.0"
    assert m.optional_dependencies["utility.formatters"].syntax == "pep440"
    assert str(m.provides["conversation"]) == "1.0.0"
    assert m.config is not None and m.config.defaults() == {"level": "info", "limit": 5}
    assert m.permissions.asked() == ["network:127.0.0.1:8080", "env:HOME", "subprocess"]
    assert parse_size(m.resources.memory) == 256 * 2**20
    assert m.isolation == "process" and m.root == tmp_path
    assert m.to_dict()["services"]["requires"] == {"formatting": "~1.1"}


def test_pyproject_tool_table_is_a_manifest(tmp_path: Path) -> None:
    body = "\n".join(
        line if not line.startswith("[") else line.replace("[", "[tool.plugbay.", 1)
        for line in FULL.splitlines()
    )
    path = write(
        tmp_path, '[project]\nname = "acme-full"\n\n[tool.plugbay]\n' + body, "pyproject.toml"
    )
    assert load_manifest(tmp_path).id == "acme.full"
    assert load_manifest(path).config is not None


def error_for(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as err:
        load_manifest(write(tmp_path, text))
    return err.value


BASE = 'id = "acme.x"\nversion = "1.0.0"\ntype = "utility"\nentry = "m:P"\n'


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE + "capabilities = [oops\n")
    assert str(err).startswith("the manifest is not valid TOML: ")
    assert err.where == f"{tmp_path / 'plugin.toml'}:5"
    assert "fix the TOML syntax" in str(err)


def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE + 'descripton = "typo"\n')
    assert str(err) == (
        f"unknown field 'descripton' (at {tmp_path / 'plugin.toml'}:5). did you mean 'description'?"
    )


def test_unknown_field_in_a_table_is_named_with_its_table(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE + "[resources]\nmemroy = 5\n")
    assert err.message == "unknown field 'resources.memroy'"
    assert err.hint == "did you mean 'memory'?"


def test_missing_field_says_what_to_add(tmp_path: Path) -> None:
    err = error_for(tmp_path, 'id = "acme.x"\nversion = "1.0.0"\ntype = "utility"\n')
    assert err.message == "missing required field 'entry'"
    assert err.hint == 'add entry = "my_module:MyPlugin"'


def test_invalid_version_is_reported_with_a_semver_hint(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace("1.0.0", "1.0"))
    assert err.message.startswith("version = '1.0' is not a valid version")
    assert err.where == f"{tmp_path / 'plugin.toml'}:2"
    assert err.plugin == "acme.x"


def test_invalid_range_names_the_dependency(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE + '[dependencies]\n"system.logging" = ">>1"\n')
    assert err.message.startswith("dependencies.system.logging = '>>1' is not a valid range")
    assert err.where == f"{tmp_path / 'plugin.toml'}:6"


def test_bad_type_and_isolation_list_the_choices(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace('"utility"', '"widget"'))
    assert err.message == "'widget' is not a valid type"
    assert err.hint == "use one of: system, integration, extension, utility"
    err = error_for(tmp_path, 'isolation = "docker"\n' + BASE)
    assert err.hint == "use one of: auto, inline, process"


def test_bad_id_entry_and_self_dependency(tmp_path: Path) -> None:
    assert "is not a valid plugin id" in str(error_for(tmp_path, BASE.replace("acme.x", "Acme X")))
    assert "is not of the form 'module:Class'" in str(
        error_for(tmp_path, BASE.replace("m:P", "m.P"))
    )
    err = error_for(tmp_path, BASE + '[dependencies]\n"acme.x" = "*"\n')
    assert err.message == "the plugin depends on itself in [dependencies]"


def test_config_default_violating_its_schema_is_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE + '[config.n]\ntype = "integer"\ndefault = 50\nmaximum = 10\n')
    assert "a default in [config] does not satisfy its own schema" in err.message
    assert "config key 'n' is invalid: 50 is not a whole number of at most 10" in err.message


def test_wrong_value_type_names_the_field(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE + "capabilities = 3\n")
    assert err.message == "field 'capabilities' must be an array of strings, not the integer 3"
    assert err.where == f"{tmp_path / 'plugin.toml'}:5"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        (
            BASE.replace('"1.0.0"', "1"),
            "field 'version' must be a string (a version like \"1.2.3\"), not the integer 1",
            2,
        ),
        (
            BASE + 'authors = ["Ann", 2]\n',
            "field 'authors' must be an array of strings: item 2 is the integer 2, not a string",
            5,
        ),
        (
            BASE + 'priority = "high"\n',
            "field 'priority' must be a whole number, not the string \"high\"",
            5,
        ),
        (BASE + "resources = 3\n", "field 'resources' must be a table, not the integer 3", 5),
        (
            BASE + "[resources]\ntimeout = 1\nmemory = true\n",
            "field 'resources.memory' must be a number of bytes or a size like \"256MiB\", "
            "not the boolean true",
            7,
        ),
        (
            BASE + '[permissions]\nsubprocess = "yes"\n',
            "field 'permissions.subprocess' must be true or false, not the string \"yes\"",
            6,
        ),
        (
            BASE + '[dependencies]\n"acme.y" = 2\n',
            "field 'dependencies.\"acme.y\"' must be a string (a version range like "
            '">=1.0.0 <2.0.0"), not the integer 2',
            6,
        ),
        (
            BASE + '[events.listens."a.b"]\npriority = 1\nqueue = "big"\n',
            'field \'events.listens."a.b".queue\' must be a whole number, not the string "big"',
            7,
        ),
        (
            BASE + '[config.n]\ntype = "integer"\nminimum = "low"\n',
            "field 'config.n.minimum' must be a number, not the string \"low\"",
            7,
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_said_in_words_at_its_line(
    tmp_path: Path, text: str, message: str, line: int
) -> None:
    err = error_for(tmp_path, text)
    assert err.message == message
    assert "Expected `" not in str(err)  # msgspec's own words
    assert err.where == f"{tmp_path / 'plugin.toml'}:{line}"
    assert err.hint and "docs/manifest.md" in err.hint


def test_a_number_where_a_string_goes_is_told_to_be_quoted(tmp_path: Path) -> None:
    err = error_for(tmp_path, BASE.replace('"1.0.0"', "1.5"))
    assert err.hint is not None and err.hint.startswith('put it in quotes: version = "1.5"')


def test_sizes() -> None:
    assert parse_size("512KiB") == 512 * 1024
    assert parse_size("1GB") == 10**9
    assert parse_size(42) == 42
    with pytest.raises(ManifestError, match="'lots' is not a size"):
        parse_size("lots")


def test_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no plugin\.toml or pyproject\.toml here"):
        load_manifest(tmp_path)


def test_config_schema_validates_before_any_plugin_code() -> None:
    m = manifest_from_mapping(
        {
            "id": "acme.c",
            "version": "1.0.0",
            "type": "utility",
            "entry": "m:P",
            "config": {
                "port": {"type": "integer", "default": 80, "minimum": 1, "maximum": 65535},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                "token": {"type": "string", "required": True},
                "tags": {"type": "array", "items": "string", "default": []},
                "hosts": {"type": "array", "default": ["a", "b"]},
                "extra": {"type": "object", "default": {"k": 1}},
            },
        }
    )
    assert m.config is not None
    first = m.config.validate({"token": "t", "port": "8080"})
    assert first == {
        "port": 8080, "mode": "a", "token": "t", "tags": [], "hosts": ["a", "b"], "extra": {"k": 1}
    }  # fmt: skip
    first["hosts"].append("c")
    assert m.config.validate({"token": "t"})["hosts"] == ["a", "b"]
    with pytest.raises(ConfigError) as err:
        m.config.validate({"token": "t", "port": 0})
    assert str(err.value) == (
        "plugin 'acme.c': config key 'port' is invalid: 0 is not a whole number from 1 to "
        "65535 (at config: port). set 'port' to a value it allows, such as 80 (its default)"
    )
    with pytest.raises(ConfigError, match="config key 'token' is required and has no default"):
        m.config.validate({})
    with pytest.raises(ConfigError, match="unknown config key 'prot'"):
        m.config.validate({"token": "t", "prot": 1})
    with pytest.raises(ConfigError, match="config key 'mode' is invalid"):
        m.config.validate({"token": "t", "mode": "c"})


def test_reading_a_manifest_never_imports_plugin_code(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("raise SystemExit('imported!')\n")
    m = load_manifest(write(tmp_path, BASE))
    assert m.entry == "m:P"


# ------------------------------------------------------------------ fuzzing

toml_scalars = st.one_of(
    st.text(max_size=12),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_like = st.recursive(
    toml_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    ["id", "version", "type", "entry", "host", "dependencies", "optional-dependencies", "services",
     "config", "permissions", "resources", "isolation", "capabilities", "priority", "junk"]
)  # fmt: skip
plausible = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["acme.x", "Bad Id", "", "a.b.c"]),
        "version": st.sampled_from(["1.0.0", "1.0", "01.0.0", "1.0.0-rc.1", "x"]),
        "type": st.sampled_from(["utility", "system", "nope"]),
        "entry": st.sampled_from(["m:P", "m", ":", "a.b:C.D"]),
    },
    optional=dict.fromkeys(["dependencies", "config", "resources", "services", "host"], json_like),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(st.dictionaries(keys, json_like, max_size=8), plausible))
def test_any_mapping_gives_a_manifest_or_a_plugbay_error(data: dict[str, Any]) -> None:
    try:
        manifest_from_mapping(data)
    except PlugbayError as exc:
        message = str(exc)
        assert message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_manifest_or_a_plugbay_error(text: str) -> None:
    try:
        parse_manifest(text)
    except PlugbayError as exc:
        message = str(exc)
        assert message
