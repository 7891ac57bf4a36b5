"""A plugin's config refused at a start is blamed on the line of the host config file
that sets it (``runtime.config_source.in_the_file``), read once for that: the line
named is one of the text whose values were refused, not of a second read.

Real hosts reading a real host config file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PluginFactory

COUNT = '[config.count]\ntype = "integer"\ndefault = 2\nmaximum = 10\n'


def _reads_of(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each read of the file at ``path`` from now on, by how it was read."""
    reads: list[str] = []
    for name in ("read_bytes", "read_text"):
        real = getattr(Path, name)

        def spy(self: Path, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            if self == path:
                reads.append(_name)
            return _real(self, *args, **kw)

        monkeypatch.setattr(Path, name, spy)
    return reads


async def test_a_refused_value_is_named_at_its_line_with_one_read_of_the_file(
    make_host: Callable[..., Any],
    plugins: PluginFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plugins("acme.knobs", extra=COUNT)
    config = tmp_path / "plugbay.toml"
    config.write_text('# the host\'s config\n[plugins."acme.knobs"]\ncount = 3\n')
    reads = _reads_of(config, monkeypatch)
    async with make_host(config_file=config) as host:
        assert str(host.plugin("acme.knobs").state) == "active"
    accepted = len(reads)

    config.write_text('# the host\'s config\n[plugins."acme.knobs"]\ncount = 11\n')
    reads.clear()
    async with make_host(config_file=config, state_dir=tmp_path / "again") as host:
        rec = host.plugin("acme.knobs")
        assert str(rec.state) == "failed"
        assert f"(at {config}:3)" in str(rec.reason), rec.reason
        assert "11" in str(rec.reason)
    # the start reads the file as an accepted one does, and the refusal once more
    assert len(reads) == accepted + 1, reads
