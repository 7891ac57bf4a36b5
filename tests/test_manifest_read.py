"""Reading and building manifests the fast way gives what the plain way gives.

Discovery reads manifest files with ``os.read`` (``model._manifest_read``) and builds
each ``PluginManifest`` by installing its fields whole (``manifest._built``): both
exist for speed (docs/architecture.md, Performance), so these tests hold them to the
result of a text-mode ``open`` and of the dataclass's own ``__init__``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from plugbay.api.errors import ManifestError
from plugbay.model import _events
from plugbay.model._manifest_read import MAX_MANIFEST_BYTES, read_text
from plugbay.model.discover import discover_directory
from plugbay.model.manifest import PluginManifest, load_manifest, load_manifest_file

BASE = 'id = "acme.x"\nversion = "1.0.0"\ntype = "utility"\nentry = "m:P"\n'

EVERYTHING = (
    BASE
    + """capabilities = ["a"]
host = ">=0.1"
python-dependencies = ["humanize>=4"]
secret-parameters = ["token"]
activation = ["on-event:acme.ping"]

[dependencies]
"acme.y" = "^1.0"

[optional-dependencies]
"acme.z" = ">=1,<2"

[services]
provides = { greeting = "1.0.0" }
requires = { formatting = "~1.1" }
optional = { audit = "^1" }

[config.level]
type = "string"
default = "info"

[permissions]
env = ["HOME"]

[resources]
memory = "64MiB"

[events]
emits = ["acme.pong"]

[events.listens."acme.ping"]
queue = 10
"""
)


def _fields(manifest: PluginManifest) -> dict[str, object]:
    return {f.name: getattr(manifest, f.name) for f in dataclasses.fields(PluginManifest)}


@pytest.mark.parametrize("text", [BASE, EVERYTHING], ids=["least", "everything"])
def test_a_read_manifest_has_every_field_the_dataclass_init_would_give(
    tmp_path: Path, text: str
) -> None:
    (tmp_path / "plugin.toml").write_text(text)
    manifest = load_manifest(tmp_path)
    fields = _fields(manifest)
    # no field missing, none extra: every attribute a caller reads is there
    assert set(vars(manifest)) == set(fields)
    again = PluginManifest(**fields)  # type: ignore[arg-type]
    assert _fields(again) == fields
    # and it behaves as the dataclass it is: frozen, and replaceable
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.id = "acme.other"  # type: ignore[misc]
    assert dataclasses.replace(manifest, isolation="inline").isolation == "inline"
    assert dataclasses.replace(manifest, isolation="inline").id == "acme.x"


def test_the_everything_manifest_is_read_in_full(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text(EVERYTHING)
    m = load_manifest(tmp_path)
    assert [str(m.dependencies["acme.y"]), str(m.optional_dependencies["acme.z"])] == [
        "^1.0",
        ">=1,<2",
    ]
    assert (str(m.provides["greeting"]), str(m.optional_services["audit"])) == ("1.0.0", "^1")
    assert m.emits == ("acme.pong",) and set(m.listens) == {"acme.ping"}
    assert m.activation == ("on-event:acme.ping",)
    assert m.config is not None and m.python_dependencies == ("humanize>=4",)


def test_no_events_are_what_the_events_check_says_of_none(tmp_path: Path) -> None:
    (tmp_path / "plugin.toml").write_text(BASE)
    manifest = load_manifest(tmp_path)

    def fail(msg: str, key: str, hint: str) -> ManifestError:
        raise AssertionError(msg)

    said = _events.check_events(_events.EventsDoc(), "eager", fail)
    assert (manifest.emits, manifest.listens, manifest.activation) == (
        said["emits"],
        said["listens"],
        said["activation"],
    )


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_line_ends_are_read_as_text_mode_reads_them(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "plugin.toml"
    path.write_bytes(BASE.replace("\n", newline).encode())
    with open(path, encoding="utf-8") as f:
        assert read_text(path) == f.read()
    assert load_manifest_file(str(path)).id == "acme.x"


def test_a_manifest_that_is_not_utf8_is_a_manifest_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "plugin.toml"
    path.write_bytes(BASE.encode() + b'description = "caf\xe9"\n')
    with pytest.raises(ManifestError, match="cannot read the manifest") as caught:
        load_manifest_file(str(path))
    assert caught.value.where == f"{path}:5"  # the line of the byte (test_manifest_hostile.py)
    found = discover_directory(tmp_path)
    assert not found.manifests and "cannot read the manifest" in found.problems[0].message


def test_a_manifest_over_the_bound_in_bytes_is_refused_though_fewer_characters(
    tmp_path: Path,
) -> None:
    # 'é' is two bytes: the characters fit, the bytes (what the message says) do not
    path = tmp_path / "plugin.toml"
    path.write_text(BASE + 'name = "' + "é" * (MAX_MANIFEST_BYTES // 2) + '"\n', encoding="utf-8")
    with pytest.raises(ManifestError, match="larger than 1,048,576 bytes; refused unread"):
        load_manifest_file(str(path))


def test_a_manifest_that_vanished_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        load_manifest_file(str(tmp_path / "plugin.toml"))


def test_a_manifest_read_from_a_pipe_is_read_whole(tmp_path: Path) -> None:
    # a pipe gives its bytes in pieces: the reader keeps reading to the end
    import os
    import threading

    fifo = tmp_path / "plugin.toml"
    os.mkfifo(fifo)
    text = BASE + 'description = "' + "x" * 200_000 + '"\n'

    def write() -> None:
        with open(fifo, "w", encoding="utf-8") as f:
            f.write(text)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert read_text(fifo) == text
    finally:
        writer.join(timeout=30)


@pytest.mark.parametrize(
    ("tables", "message", "line"),
    [
        (
            '[dependencies]\n"acme.y" = "^1"\n[optional-dependencies]\n"acme.y" = "^1"\n',
            "acme.y listed both as dependency and optional dependency",
            6,
        ),
        (
            '[optional-dependencies]\n"Acme Y" = "^1"\n',
            "'Acme Y' in [optional-dependencies] is not a valid plugin id",
            6,
        ),
        (
            '[optional-dependencies]\n"acme.x" = "^1"\n',
            "the plugin depends on itself in [optional-dependencies]",
            6,
        ),
        (
            '[dependencies]\n"acme.y" = "^1"\n"acme.w" = "^^1"\n',
            "dependencies.acme.w = '^^1' is not a valid range",
            7,
        ),
    ],
    ids=["both-tables", "bad-id", "itself", "bad-range"],
)
def test_a_wrong_dependency_is_named_with_its_line(
    tmp_path: Path, tables: str, message: str, line: int
) -> None:
    (tmp_path / "plugin.toml").write_text(BASE + tables)
    found = discover_directory(tmp_path)
    assert not found.manifests
    (error,) = found.problems
    assert error.message.startswith(message)
    assert error.where == f"{tmp_path / 'plugin.toml'}:{line}"
    assert error.hint


def test_manifests_without_the_tables_share_one_empty_default_and_others_get_their_own(
    tmp_path: Path,
) -> None:
    import msgspec

    from plugbay.model._placement import PlacementRequest
    from plugbay.model.manifest import Permissions, Resources

    for name, text in (("a", BASE), ("b", BASE), ("c", EVERYTHING)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "plugin.toml").write_text(text.replace("acme.x", f"acme.{name}"))
    a, b, c = sorted(discover_directory(tmp_path).manifests, key=lambda m: m.id)
    assert (a.permissions, a.resources, a.placement) == (
        Permissions(),
        Resources(),
        PlacementRequest(),
    )
    assert a.permissions is b.permissions  # one object for every manifest without it
    assert c.permissions.env == ["HOME"] and c.resources.memory == "64MiB"
    assert a.permissions.env == []  # the manifest that asked did not change the default
    with pytest.raises(AttributeError):
        a.permissions.env = ["PATH"]  # type: ignore[misc]  # frozen: shared safely
    assert msgspec.to_builtins(a.permissions) == msgspec.to_builtins(Permissions())
