"""The bundled plugins held to what their manifests and docs promise, through a real
host (extension.processor in its sandboxed worker, as shipped)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from plugbay import PlugbayError
from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

FIRST, AGAIN = "In what way", "What resemblance do you see"  # DOCTOR's answers, in turn


@pytest.fixture
def tree(plugins: PluginFactory) -> PluginFactory:
    plugins.copy_bundled("core/system", "utility/formatters", "extension/processor")
    return plugins


def host_on(tree: PluginFactory, tmp_path: Path, **config: Any) -> Host:
    return Host(
        tree.root, state_dir=tmp_path / "state", entry_points=False,
        config={"extension.processor": config} if config else None,
    )  # fmt: skip


async def say(host: Host, session: str) -> str:
    return str(await host.call("extension.processor", "respond", text="Men are all alike.",
                               session=session))  # fmt: skip


async def test_max_sessions_bounds_the_sessions_kept_on_disk_least_recent_first(
    tree: PluginFactory, tmp_path: Path
) -> None:
    """plugin.toml: 'Sessions kept on disk; the least recently used are forgotten first'."""
    async with host_on(tree, tmp_path, **{"max-sessions": 2}) as host:
        assert [await say(host, s) for s in ("a", "b", "c")] == [FIRST] * 3
        assert await say(host, "c") == AGAIN  # the newest two are remembered
        assert await say(host, "b") == AGAIN
        assert await say(host, "a") == FIRST  # the third is forgotten, not reread
    async with host_on(tree, tmp_path, **{"max-sessions": 2}) as host:  # after a restart
        assert await say(host, "b") == "What does that similarity suggest to you"  # 3rd
        assert await say(host, "c") == FIRST  # forgotten when 'a' came back


async def test_two_sessions_whose_names_differ_only_in_odd_characters_never_share_a_memory(
    tree: PluginFactory, tmp_path: Path
) -> None:
    """IRC nicks 'bob[' and 'bob]' are two people: one must never hear the other's past."""
    async with host_on(tree, tmp_path) as host:
        assert await say(host, "irc:bob[") == FIRST
    async with host_on(tree, tmp_path) as host:  # what each said is read back from disk
        assert await say(host, "irc:bob]") == FIRST
        assert await say(host, "irc:bob[") == AGAIN
        long = "x" * 150
        assert await say(host, long + "1") == FIRST
        assert await say(host, long + "2") == FIRST  # the same first 100 characters


async def test_wrap_refuses_a_width_of_zero_instead_of_using_the_default(
    tree: PluginFactory, tmp_path: Path
) -> None:
    async with host_on(tree, tmp_path) as host:
        with pytest.raises(PlugbayError, match="width must be at least 10 columns, got 0"):
            await host.call("utility.formatters", "wrap", text="Men are all alike.", width=0)
        # no width: the configured default (72)
        assert (
            await host.call("utility.formatters", "wrap", text="a " * 40)
            == ("a " * 36).strip() + "\na a a a"
        )


async def test_a_security_note_is_refused_what_would_forge_or_bloat_the_trail(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """``record`` bounds its detail (10,000 characters); the kind and the plugin it is
    about are bounded too: a note cannot carry a line break or a megabyte in either."""
    plugins.copy_bundled("core/system", "core/security")
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        with pytest.raises(PlugbayError, match=r"kind must start with 'security\.'"):
            await host.call("core.security", "record", kind="security.note\n", detail="x")
        for plugin in ("x" * 100_000, "acme.tool\nsecurity.forged", "Acme Tool"):
            with pytest.raises(
                PlugbayError, match=r"plugin must be a plugin id such as 'acme\.tool'"
            ):
                await host.call("core.security", "record", kind="security.note", detail="x",
                                plugin=plugin)  # fmt: skip
        seq = await host.call(
            "core.security", "record", kind="security.note", detail="x", plugin="greeter"
        )
        (entry,) = await host.call("core.security", "trail", limit=1)
        assert (entry["seq"], entry["kind"], entry["data"]) == (
            seq, "security.note", {"detail": "x", "plugin": "greeter"},
        )  # fmt: skip
        assert (await host.call("core.security", "verify"))["ok"] is True


async def test_a_caller_naming_a_new_source_each_time_does_not_grow_the_host(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """system.logging's ``log`` runs in the host's process: the logging module keeps
    every logger it makes for good, so it must not make one per ``source``."""
    plugins.copy_bundled("core/system")
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        for i in range(300):
            await host.call("system.logging", "log", message=f"note {i}", source=f"src-{i}")
        await host.call("system.logging", "log", message="below", level="debug", source="q")
        records = await host.call("system.logging", "tail", limit=301)
        said = [(r.logger, r.message) for r in records if r.logger.startswith("plugbay.log.")]
        assert said == [(f"plugbay.log.src-{i}", f"note {i}") for i in range(300)]
        kept = [n for n in logging.Logger.manager.loggerDict if n.startswith("plugbay.log.src-")]
        assert kept == []


async def test_system_logging_reloaded_as_a_new_version_keeps_every_record_at_its_level(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """A new version in plugin.toml reloads (the manifest is the version's source), and
    the new version keeps info records as the old one did."""
    plugins.copy_bundled("core/system")
    manifest = plugins.root / "core" / "system" / "plugin.toml"
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "1.0.1"'))
        await host.reload("system.logging")
        assert host.plugin("system.logging").version == "1.0.1"
        await host.call("system.logging", "log", message="after the reload", source="tests")
        records = await host.call("system.logging", "tail", limit=50, level="info")
        assert [r.message for r in records if r.logger == "plugbay.log.tests"] == [
            "after the reload"
        ]
        stored = (tmp_path / "state" / "data" / "system.logging" / "logs.jsonl").read_text()
        assert stored.count('"message": "after the reload"') == 1


async def test_doctor_refuses_a_text_too_long_to_read_and_keeps_answering(
    tree: PluginFactory, tmp_path: Path
) -> None:
    """ELIZA's time grows with the text: 900,000 characters held the worker's loop past
    its heartbeat and the worker was killed (PluginCrashed), sessions and all."""
    async with host_on(tree, tmp_path) as host:
        assert await say(host, "mine") == FIRST
        with pytest.raises(PlugbayError, match="text is 900,000 characters; DOCTOR reads at"):
            await host.call("extension.processor", "respond", text="I am sad " * 100_000)
        assert await say(host, "mine") == AGAIN  # the same worker, the conversation intact
        assert host.plugin("extension.processor").state.value == "active"


def _sessions(tmp_path: Path) -> Path:
    """extension.processor's session files (its data directory, the host stopped)."""
    return tmp_path / "state" / "data" / "extension.processor" / "sessions"


def trusted(tree: PluginFactory, tmp_path: Path) -> Host:
    """The processor inline: its data directory a plain one the test can rename files in
    between two runs (a sandboxed worker's is an ext4 image, the storage quota)."""
    return Host(
        tree.root, state_dir=tmp_path / "state", entry_points=False,
        inline=["extension.processor"],
    )  # fmt: skip


def _as_before_the_hash(tmp_path: Path, old_name: str) -> None:
    """Give the one session file named like ``old_name`` the name that the version before
    names carried a hash wrote (``irc:alice.json``; ``irc:bob_.json`` for ``irc:bob[``)."""
    readable = old_name.removesuffix(".json")
    (written,) = _sessions(tmp_path).glob(f"{readable}-*.json")
    written.rename(written.with_name(old_name))


async def test_a_session_file_of_the_old_naming_is_taken_up_once_it_can_be_no_one_elses(
    tree: PluginFactory, tmp_path: Path
) -> None:
    """After an upgrade, a conversation goes on where it was: its file of the old naming
    ('irc:alice.json') is moved to the new one on first use, not left for a fresh start."""
    async with trusted(tree, tmp_path) as host:
        assert await say(host, "irc:alice") == FIRST
    _as_before_the_hash(tmp_path, "irc:alice.json")
    async with trusted(tree, tmp_path) as host:
        assert await say(host, "irc:alice") == AGAIN  # her memory, read from the old file
    names = sorted(p.name for p in _sessions(tmp_path).glob("*.json"))
    assert len(names) == 1 and names[0].startswith("irc:alice-"), names  # moved, not copied


async def test_a_session_file_of_the_old_naming_another_may_have_written_is_left(
    tree: PluginFactory, tmp_path: Path
) -> None:
    """'bob[' and 'bob]' both wrote 'irc:bob_.json': neither takes it, nor does 'irc:bob_'
    once one of them has a file of its own; a session named after another's new file
    ('irc:alice-<her hash>') does not take hers; a reset one does not come back."""
    async with trusted(tree, tmp_path) as host:
        assert await say(host, "irc:bob[") == FIRST
    _as_before_the_hash(tmp_path, "irc:bob_.json")
    async with trusted(tree, tmp_path) as host:
        assert await say(host, "irc:bob]") == FIRST
        assert await say(host, "irc:bob[") == FIRST
        assert await say(host, "irc:bob_") == FIRST  # 'bob]' may have written it
        warned = [
            r["message"]
            for r in host.logs("extension.processor")
            if "irc:bob_.json, a session file of the naming before" in r["message"]
        ]
        assert len(warned) == 1, warned  # said once, for the first session that found it
        assert "rename it to irc:bob_-" in warned[0] and "or delete it" in warned[0]
        assert await say(host, "irc:alice") == FIRST
        (hers,) = _sessions(tmp_path).glob("irc:alice-*.json")
        assert await say(host, f"irc:{hers.stem}") == FIRST  # not her conversation
        assert await say(host, "irc:alice") == AGAIN  # still hers, where she left it
    assert (_sessions(tmp_path) / "irc:bob_.json").is_file()
    async with trusted(tree, tmp_path) as host:
        assert await say(host, "irc:carol") == FIRST
    _as_before_the_hash(tmp_path, "irc:carol.json")
    async with trusted(tree, tmp_path) as host:
        await host.call("extension.processor", "reset", session="irc:carol")
    async with trusted(tree, tmp_path) as host:
        assert await say(host, "irc:carol") == FIRST  # forgotten, the old file with it
