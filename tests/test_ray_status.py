"""What the host tells an operator to run to look at its Ray cluster works on a private
``local`` cluster, whose token is kept out of ``~/.ray`` so that a bare ``ray status``
answers ``AuthenticationError`` (``isolation._ray_status``); a private cluster that cannot
start names the settings to correct, not ``ray status``. A ``local`` cluster of the
test's own, in a temp dir, ended by leaving it (never ``ray stop``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from plugbay.api.errors import PlugbayError
from plugbay.isolation.ray import RayBackend
from plugbay.isolation.ray_settings import RaySettings

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.mark.slow
def test_the_command_the_hint_names_shows_a_local_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    from plugbay.isolation._ray_join import join, leave
    from plugbay.isolation._ray_status import look_at_cluster

    if ray.is_initialized():
        pytest.skip("this process is another cluster's driver")
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    temp = tempfile.mkdtemp(prefix="pbs-", dir="/tmp")
    settings = RaySettings(num_cpus=1, object_store_bytes=80 << 20, temp_dir=temp)
    try:
        join(ray, settings)
        hint = look_at_cluster(settings, ray.get_runtime_context().gcs_address)
        node = ray.get_runtime_context().get_node_id()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        command = hint.split("Ray's own view: '", 1)[1].split("'", 1)[0]
        assert "'plugbay nodes'" in hint
        deadline = time.monotonic() + 60  # a guard, not a timed assertion
        while True:  # a cluster just started may say "No cluster status" for a moment
            shown = subprocess.run(
                command.replace("ray status", RAY + " status", 1),
                shell=True, env=clean, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert shown.returncode == 0, shown.stdout + shown.stderr
            if node in shown.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert node in shown.stdout, shown.stdout
    finally:
        leave(ray)
        shutil.rmtree(temp, ignore_errors=True)


async def test_a_cluster_with_no_alive_node_points_at_what_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def host_call(*args: Any) -> None:
        return None

    backend = RayBackend(host_call, lambda: RaySettings())  # type: ignore[arg-type]

    async def no_node() -> list[dict[str, Any]]:  # every node of the cluster is gone
        return []

    monkeypatch.setattr(backend, "nodes", no_node)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/tmp/pbray-x/auth_token")
    with pytest.raises(PlugbayError) as caught:
        await backend._pick_node()
    assert caught.value.message == "the Ray cluster has no alive node"
    assert caught.value.hint is not None
    assert "'plugbay nodes' lists the cluster's nodes" in caught.value.hint
    assert "RAY_AUTH_TOKEN_PATH=/tmp/pbray-x/auth_token ray status --address" in (caught.value.hint)


def test_a_local_cluster_that_cannot_start_names_the_setting(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from plugbay.isolation._ray_join import join

    if ray.is_initialized():
        pytest.skip("this process is another cluster's driver")
    settings = RaySettings(num_cpus=1, object_store_bytes=1 << 20, origin="plugbay.toml")
    with pytest.raises(PlugbayError) as caught:
        join(ray, settings)
    assert caught.value.message.startswith(
        "could not start the host's private Ray cluster ([ray] address = 'local'): "
    )
    assert "78643200" in caught.value.message  # Ray's own words: its smallest store
    assert caught.value.hint is not None
    assert "object-store" in caught.value.hint and "plugbay.toml" in caught.value.hint
    assert "ray status" not in caught.value.hint
