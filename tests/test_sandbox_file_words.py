"""What a sandboxed plugin is told when a file refuses it, in a real sandboxed worker.

A refusal inside the area the sandbox lets it use (its data directory, a granted
``read:`` path) that the file's own mode or owner made is not the sandbox's: the
plugin's own error, with a hint about file permissions, no grant offered and no
security event. Outside that area (a symlink out of it included), the sandbox's words
stay. And what docs/security.md says the sandbox does not cover, file timestamps, is
what a hostile plugin can do: it sets a host file's times while it cannot read it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugbay import PermissionDenied, PluginCallError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

pytestmark = [pytest.mark.slow]

FILES = """
import os
from pathlib import Path

from plugbay import UtilityPlugin, command

class P(UtilityPlugin):
    async def initialize(self, context):
        self.data = context.environment.data_dir

    @command
    def read(self, path: str) -> str:
        return Path(path).read_text()

    @command
    def write(self, path: str) -> None:
        Path(path).write_text("overwritten")

    @command
    def chmod(self, path: str) -> None:
        os.chmod(path, 0o777)

    @command
    def set_times(self, path: str, when: float) -> None:
        os.utime(path, (when, when))

    @command
    def touch(self, name: str) -> float:
        (self.data / name).touch()
        return os.stat(self.data / name).st_mtime

    @command
    def data_dir(self) -> str:
        return str(self.data)
"""

#: a user that is not the host's: what "another user's file" is here
NOBODY = 65534


@pytest.fixture
async def sandboxed(tmp_path: Path) -> AsyncIterator[tuple[Host, Path, Path]]:
    if os.geteuid() != 0:
        pytest.skip("making a file another user's takes root")
    factory = PluginFactory(tmp_path / "plugins")
    shared = tmp_path / "shared"
    shared.mkdir()
    factory("acme.files", FILES, extra=f'[permissions]\nread = ["{shared}"]\n')
    async with Host(
        factory.root, state_dir=tmp_path / "state", entry_points=False, init_timeout=30
    ) as host:
        await host.grant("acme.files", f"read:{shared}")  # its worker restarts with it
        assert host.plugin("acme.files").placement.sandboxed  # type: ignore[union-attr]
        data = Path(await host.call("acme.files", "data_dir"))
        yield host, data, shared


def others(path: Path, text: str = "another user's") -> Path:
    path.write_text(text)
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o600)
    return path


async def test_a_file_s_own_permissions_in_its_area_are_not_called_the_sandbox_s(
    sandboxed: tuple[Host, Path, Path],
) -> None:
    host, data, shared = sandboxed
    assert host.state is not None
    before = host.events.counts["security.denied"]
    locked, granted = others(data / "locked.txt"), others(shared / "locked.txt")
    for command, path, verb in (
        ("read", locked, "reading"),
        ("write", locked, "writing"),
        ("read", granted, "reading"),
    ):
        with pytest.raises(PluginCallError) as info:
            await host.call("acme.files", command, path=str(path))
        hint = info.value.hint or ""
        assert f"the sandbox allows {verb} {path}" in hint, hint
        assert "the file's own permissions refused it" in hint
        assert f"owned by uid {NOBODY}" in hint and "mode 0600" in hint
        assert "no 'plugbay grant' changes this" in hint
        assert "PermissionError" in info.value.message
    assert locked.read_text() == "another user's"
    # nothing the sandbox did: no security event, nothing in its history as one
    assert host.events.counts["security.denied"] == before
    assert not [e for e in host.state.history("acme.files") if e.action == "security.denied"]

    # a name inside its data directory that leads out of it is the sandbox's to refuse
    outside = host.state_dir.parent / "outside.txt"  # type: ignore[union-attr]
    outside.write_text("the host's")
    (data / "leads-out").symlink_to(outside)
    with pytest.raises(PermissionDenied) as denied:
        await host.call("acme.files", "read", path=str(data / "leads-out"))
    assert denied.value.details["layer"] == "landlock"
    assert f"plugbay grant acme.files read:{outside}" in (denied.value.hint or "")

    # a mode change in its own data directory is seccomp's refusal, and says so
    (data / "mine.txt").write_text("mine")
    with pytest.raises(PermissionDenied) as mode:
        await host.call("acme.files", "chmod", path=str(data / "mine.txt"))
    assert mode.value.details["operation"] == f"changing the mode of {data / 'mine.txt'}"
    assert mode.value.details["permission"] is None
    assert "shutil.copyfile" in (mode.value.hint or "")


async def test_timestamps_are_not_covered_by_the_sandbox_as_the_docs_say(
    sandboxed: tuple[Host, Path, Path],
) -> None:
    """docs/security.md: a plugin can set the times of a file it can name that is the
    host user's (Landlock does not cover metadata; seccomp cannot filter by path), and
    ``utimensat`` is not refused outright because ``Path.touch`` needs it."""
    host, _, _ = sandboxed
    assert host.state_dir is not None
    target = host.state_dir.parent / "host-file.txt"
    target.write_text("the host's")
    os.utime(target, (1_000_000, 1_000_000))
    with pytest.raises(PermissionDenied):  # its content is out of reach
        await host.call("acme.files", "read", path=str(target))
    await host.call("acme.files", "set_times", path=str(target), when=2_000_000.0)
    assert target.stat().st_mtime == 2_000_000.0  # its times are not
    assert target.read_text() == "the host's"
    # what refusing utimensat would break: Path.touch of its own file (silently: touch
    # falls back to opening the file, and its time would stay as it was)
    first = await host.call("acme.files", "touch", name="marker")
    os.utime(host.state_dir / "data" / "acme.files" / "marker", (1_000_000, 1_000_000))
    assert await host.call("acme.files", "touch", name="marker") > first - 1
