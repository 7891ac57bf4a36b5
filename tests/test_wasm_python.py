"""A Wasm plugin written in Python (``plugbay new --lang python-wasm``): componentize-py
builds it into a component of the plugbay world; the host runs it like a C module —
declared types, storage, host denials, limits — and a restart loads the compiled
component from its cache."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from plugbay.api.errors import ParameterError, PermissionDenied, PluginCallError, PluginTimeout
from plugbay.runtime.host import Host
from tests import _wasm

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("componentize-py") is None and not _wasm.componentize_beside(),
        reason="no componentize-py: pip install 'plugbay[wasm-python]' (make's set-up does)",
    ),
]

PLUGIN = "acme.pystats"

EXTRA = """
    def secret(name: str) -> str:
        return ask("secret", name=name)

    def spin() -> None:
        while True:
            pass

    def nap(seconds: float) -> None:
        import time

        time.sleep(seconds)

    def boom() -> None:
        raise ValueError("bad value")
"""


def write(root: Path) -> Path:
    source, manifest = _wasm.python_template()
    source = source.replace(
        "\ndef count() -> int:", EXTRA.replace("\n    ", "\n") + "\n\ndef count() -> int:"
    ).replace(
        '"calls": count,',
        '"calls": count,\n    "secret": secret,\n    "spin": spin,\n    "nap": nap,\n    "boom": boom,',
    )
    manifest += (
        '\n[commands.secret]\nparams = { name = "str" }\nreturns = "str"\n'
        '\n[commands.spin]\nreturns = "None"\ntimeout = 1\n'
        '\n[commands.nap]\nparams = { seconds = "float" }\nreturns = "None"\ntimeout = 1\n'
        '\n[commands.boom]\nreturns = "None"\n'
    )
    return _wasm.write_plugin(root / "pystats", PLUGIN, source, manifest, language="python")


async def test_a_python_component_answers_like_any_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # compiling an 18 MB component takes tens of seconds: once for the whole session
    monkeypatch.setenv("PLUGBAY_WASM_CACHE", str(_wasm.CACHE / "compiled"))
    write(tmp_path / "plugins")
    options = {"state_dir": tmp_path / "state", "entry_points": False, "init_timeout": 120}
    async with Host(tmp_path / "plugins", **options) as host:  # type: ignore[arg-type]
        rec = host.plugin(PLUGIN)
        assert (rec.state, rec.isolation) == ("active", "wasm"), rec.reason
        assert await host.call(PLUGIN, "word_count", text="one two  three") == 3
        assert await host.call(PLUGIN, "shout", text="py") == "PY!"
        with pytest.raises(ParameterError, match="parameter 'text' expects str, got int"):
            await host.call(PLUGIN, "shout", text=3)
        await host.call(PLUGIN, "remember", key="lang", value="python")
        with pytest.raises(PermissionDenied, match="secret 'token' was not granted"):
            await host.call(PLUGIN, "secret", name="token")
        # what it raised, and where in its code
        with pytest.raises(
            PluginCallError, match=r"ValueError: bad value \(at app.py:\d+ in boom\)"
        ):
            await host.call(PLUGIN, "boom")
        started = time.monotonic()
        with pytest.raises(PluginTimeout):
            await host.call(PLUGIN, "spin")
        assert time.monotonic() - started < 10
        assert await host.call(PLUGIN, "word_count", text="still here") == 2  # replaced
        assert any(r["message"] == "ready" for r in host.logs(PLUGIN, limit=50))
        # a sleep the host cannot cut short (WASI 0.2's, in the component): its caller
        # is answered at its timeout all the same, not when the sleep ends
        started = time.monotonic()
        with pytest.raises(PluginTimeout, match="within 1 s"):
            await host.call(PLUGIN, "nap", seconds=8)
        assert time.monotonic() - started < 4
    async with Host(tmp_path / "plugins", **options) as host:  # type: ignore[arg-type]
        assert await host.call(PLUGIN, "recall", key="lang") == "python"
        handle = host.plugin(PLUGIN).handle
        assert handle is not None and str(handle.usage()["module"]).endswith(".cwasm")  # type: ignore[index]
