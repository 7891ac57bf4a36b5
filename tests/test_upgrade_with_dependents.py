"""``plugbay upgrade ID --with-dependents`` with no version named: the newest release
that the plugin and its dependents can move to together, as ``plugbay upgrade ID`` alone
takes the newest its dependents accept, naming the newer one passed over and why."""

from __future__ import annotations

import json
from pathlib import Path

from tests._cli import plugbay
from tests.test_cli_json import documented, same_shape
from tests.test_upgrade_choices import NEEDS_BASE_1, _plugin


def test_with_dependents_falls_back_to_a_release_its_dependents_accept(tmp_path: Path) -> None:
    """With 1.1.0 and 2.0.0 installed and no version of the dependent taking 2.0.0,
    `upgrade acme.base --with-dependents` refused ("no consistent set … accepts acme.base
    2.0.0") and moved nothing, where `upgrade acme.base` alone moved to 1.1.0."""
    _plugin(tmp_path / "plugins" / "base", "acme.base", "1.0.0")
    _plugin(tmp_path / "plugins" / "app", "acme.app", "1.0.0", NEEDS_BASE_1)
    served = plugbay("call", "acme.base", "which", cwd=tmp_path)
    assert served.stdout.strip() == "acme.base 1.0.0", served.stderr
    for version in ("1.1.0", "2.0.0"):
        installed = plugbay("install", str(_plugin(tmp_path / "v" / version, "acme.base", version)), cwd=tmp_path)  # fmt: skip
        assert installed.returncode == 0, installed.stderr
    dry = plugbay("upgrade", "acme.base", "--with-dependents", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, (dry.stdout, dry.stderr)
    assert "acme.base: would move 1.0.0 → 1.1.0" in dry.stdout
    note = " ".join(dry.stdout.split())
    assert "note: 2.0.0 is installed too, but no consistent set of installed versions " in note
    assert "'acme.app' 1.0.0 requires 'acme.base' ^1" in note
    assert "then 'plugbay upgrade acme.base 2.0.0 --with-dependents'" in note
    up = plugbay("upgrade", "acme.base", "--with-dependents", "--json", cwd=tmp_path)
    assert up.returncode == 0, (up.stdout, up.stderr)
    answer = json.loads(up.stdout)
    same_shape(answer, documented()["upgrade"], "upgrade")
    assert answer["changes"] == {"acme.base": ["1.0.0", "1.1.0"]}
    assert answer["passed_over"]["version"] == "2.0.0"
    assert set(answer["passed_over"]["dependents"]) == {"acme.app"}
    called = plugbay("call", "acme.base", "which", cwd=tmp_path)
    assert called.stdout.strip() == "acme.base 1.1.0"


def test_with_dependents_and_no_release_they_accept_is_refused_naming_the_newest(
    tmp_path: Path,
) -> None:
    _plugin(tmp_path / "plugins" / "base", "acme.base", "1.0.0")
    _plugin(tmp_path / "plugins" / "app", "acme.app", "1.0.0", NEEDS_BASE_1)
    for version in ("2.0.0", "3.0.0"):
        installed = plugbay("install", str(_plugin(tmp_path / "v" / version, "acme.base", version)), cwd=tmp_path)  # fmt: skip
        assert installed.returncode == 0, installed.stderr
    up = plugbay("upgrade", "acme.base", "--with-dependents", cwd=tmp_path)
    assert up.returncode == 1
    said = " ".join(up.stderr.split())
    assert "no consistent set of installed versions accepts acme.base 3.0.0" in said
    assert "'acme.app' 1.0.0 requires 'acme.base' ^1" in said
    called = plugbay("call", "acme.base", "which", cwd=tmp_path)
    assert called.stdout.strip() == "acme.base 1.0.0"
