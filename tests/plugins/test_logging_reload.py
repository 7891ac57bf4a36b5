"""system.logging reloaded while records stream in: for a moment both versions are
attached to the ``plugbay`` logger, and exactly one of them may write ``logs.jsonl``,
or a record is written twice and both rotate the file."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from plugbay.runtime.host import Host
from tests.conftest import PluginFactory

#: the logger an inline plugin's ``context.logger`` is (``plugbay.plugin.<id>``)
STREAM = "plugbay.plugin.acme.stream"


@contextmanager
def streaming(paced: float) -> Iterator[list[int]]:
    """Records ``record N`` logged from a thread, one every ``paced`` seconds at most,
    until the block ends; yields the numbers logged so far (all of them after)."""
    logged: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        log = logging.getLogger(STREAM)
        n = 0
        while not stop.is_set():
            log.info("record %d", n)
            logged.append(n)
            n += 1
            stop.wait(paced)

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        yield logged
    finally:
        stop.set()
        thread.join(timeout=30)


def streamed(*files: Path) -> list[int]:
    """The record numbers in ``files``, in the order they are written there."""
    out: list[int] = []
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["logger"] == STREAM:
                out.append(int(entry["message"].removeprefix("record ")))
    return out


async def test_a_reload_under_a_stream_of_records_writes_each_once_and_loses_none(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    plugins.copy_bundled("core/system")
    logs = tmp_path / "state" / "data" / "system.logging" / "logs.jsonl"
    async with Host(plugins.root, state_dir=tmp_path / "state", entry_points=False) as host:
        with streaming(paced=0.0002) as logged:
            for _ in range(6):
                await host.reload("system.logging")
        assert host.plugin("system.logging").state.value == "active"
    written = streamed(logs)
    twice = sorted(n for n, count in Counter(written).items() if count > 1)
    assert twice == [], f"{len(twice)} records written twice, e.g. {twice[:5]}"
    lost = sorted(set(logged) - set(written))
    assert lost == [], f"{len(lost)} of {len(logged)} records lost: {lost[:5]}"
    assert written == logged  # and in the order they were logged


async def test_one_version_rotates_the_file_during_a_reload(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """Rotated at 4 KiB: every record in logs.jsonl.1 is older than every record in
    logs.jsonl (a version writing on to the file renamed under it breaks that), no
    record is in either twice, and the newest is kept."""
    plugins.copy_bundled("core/system")
    logs = tmp_path / "state" / "data" / "system.logging" / "logs.jsonl"
    config = {"system.logging": {"max-file-bytes": 4096}}
    async with Host(
        plugins.root, state_dir=tmp_path / "state", entry_points=False, config=config
    ) as host:
        with streaming(paced=0.0002) as logged:
            for _ in range(6):
                await host.reload("system.logging")
        assert logged
    older, newer = streamed(logs.with_suffix(".jsonl.1")), streamed(logs)
    both = older + newer
    assert older, "the file was not rotated"
    assert both == sorted(set(both)), (older[-5:], newer[:5])  # older first, none twice
    assert both[-1] == logged[-1]  # the newest record is kept
