"""Joining and leaving the Ray cluster from the host (``isolation.ray``).

* ``join``: the host becomes the cluster's driver (``[ray] address``), or starts a
  private cluster of its own (``"local"``). An address whose head does not answer is
  refused at once, naming it: the host keeps Ray from ending its process when a head
  goes (``ray_head.keep_driver``), and with that Ray would wait for an absent head for
  a year, the host's start with it.
* ``leave``: the driver leaves; a private cluster stops with it, and what it left on
  this machine goes with it (``forget_local``): its temp directory, and its node's
  cache of shipped code and plugins' scratch directories (``isolation.shipping``),
  which no later cluster reads (each has a node of a new id).
* ``keep_fault_handlers``: around both, this process's fault handlers stay its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from typing import Any

from plugbay.api.errors import PlugbayError
from plugbay.isolation._ray_channels import Channels
from plugbay.isolation.ray_head import head_unreachable, keep_driver
from plugbay.isolation.ray_settings import RaySettings
from plugbay.isolation.shipping import node_cache_root

__all__ = ["forget_local", "join", "keep_fault_handlers", "leave", "listen"]

#: the signals a runtime in this process may handle itself (Wasm traps: SIGILL, SIGSEGV…)
_FAULTS = (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT)


@contextlib.contextmanager
def keep_fault_handlers() -> Iterator[None]:
    """Joining Ray installs its crash reporter over this process's fault handlers without
    calling the ones it replaced, and leaving it resets them to the default: a Wasm
    runtime here (its traps are SIGILL and SIGSEGV) would then see a trap kill the host.
    Around both, the handlers in place before are put back (an opaque ``struct
    sigaction`` copy); one installed later chains to Ray's."""
    libc = ctypes.CDLL(None, use_errno=True)
    saved = {}
    for sig in _FAULTS:
        old = ctypes.create_string_buffer(256)  # larger than struct sigaction anywhere
        if libc.sigaction(int(sig), None, old) == 0:
            saved[sig] = old
    try:
        yield
    finally:
        for sig, old in saved.items():
            libc.sigaction(int(sig), old, None)


def listen(address: str) -> Channels:
    """The host's listener for its plugins' channels, on ``[ray] listen``."""
    try:
        return Channels(address)
    except OSError as exc:
        raise PlugbayError(
            f"cannot listen for Ray plugins' channels on [ray] listen = {address!r}: "
            f"{exc.strerror or exc}",
            hint="set [ray] listen to an address of this machine that the cluster's nodes "
            "reach (its IP on their network)",
        ) from None


def _not_the_sigterm_note(record: logging.LogRecord) -> bool:
    """Ray's note that it left SIGTERM alone: the host joins from a thread on purpose, so
    that SIGTERM stays the host's (a drain, then a clean stop); not a warning to print."""
    return "SIGTERM handler is not set" not in record.getMessage()


def join(ray: Any, settings: RaySettings) -> tuple[str | None, str | None]:
    """Join the cluster (``local``: start a private one); blocking. Returns a private
    cluster's temp directory and node (both None for a cluster started elsewhere)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    worker_log = logging.getLogger("ray._private.worker")
    if _not_the_sigterm_note not in worker_log.filters:
        worker_log.addFilter(_not_the_sigterm_note)
    keep_driver()  # a lost head must not end the host (isolation.ray_head)
    options: dict[str, Any] = {
        "namespace": "plugbay",
        "configure_logging": False,
        "log_to_driver": False,
    }
    temp_dir = None
    if settings.address == "local":
        temp_dir = settings.temp_dir or tempfile.mkdtemp(prefix="pbray-", dir="/tmp")
        options |= {
            "address": "local",
            "include_dashboard": False,
            "object_store_memory": settings.object_store_bytes,
            "_temp_dir": temp_dir,
            "num_cpus": settings.num_cpus,
        }
    else:
        options["address"] = settings.address
        problem = head_unreachable(settings.address)
        if problem is not None:
            raise PlugbayError(
                f"could not join the Ray cluster ([ray] address = {settings.address!r}): {problem}",
                hint="start the cluster's head first ('ray start --head' on its machine), "
                "or correct [ray] address in the host config; the plugins not placed on "
                "Ray start meanwhile",
            )
    try:
        with keep_fault_handlers():
            ray.init(**options)
    except Exception as exc:
        if temp_dir is not None and settings.temp_dir is None:  # made for it above
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise PlugbayError(
            f"could not reach the Ray cluster at {settings.address!r}: {exc}",
            hint="check [ray] address in the host config ('ray status' on the cluster)",
        ) from None
    if temp_dir is None:
        return None, None
    return temp_dir, str(ray.get_runtime_context().get_node_id())


def leave(ray: Any) -> None:
    """Leave the cluster (a private one stops); blocking."""
    with keep_fault_handlers():  # leaving Ray resets them to the default (death)
        ray.shutdown()


def forget_local(temp_dir: str | None, node: str | None) -> None:
    """What a private cluster left on this machine, once it stopped: its temp directory
    (None: the operator's ``[ray] temp-dir``, kept) and its node's cache. Blocking."""
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)
    if node is not None:
        with contextlib.suppress(PlugbayError):  # not a private directory: left alone
            shutil.rmtree(node_cache_root(node), ignore_errors=True)
