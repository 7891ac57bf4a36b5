"""Joining and leaving the Ray cluster from the host (``isolation.ray``).

* ``join``: the host becomes the cluster's driver (``[ray] address``), or starts a
  private cluster of its own (``"local"``). An address whose head does not answer is
  refused at once, naming it: the host keeps Ray from ending its process when a head
  goes (``ray_head.keep_driver``), and with that Ray would wait for an absent head for
  a year, the host's start with it. So is, after a bounded wait, an address that takes
  connections but is not a Ray head, or a cluster whose token authentication is not
  the host's (``isolation._ray_probe``).
* ``leave``: the driver leaves; a private cluster stops with it, and what it left on
  this machine goes with it (``forget_local``): its temp directory, and its node's
  cache of shipped code and plugins' scratch directories (``isolation.shipping``),
  which no later cluster reads (each has a node of a new id).
* ``keep_fault_handlers``: around both, this process's fault handlers stay its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from plugbay.api.errors import PlugbayError
from plugbay.isolation._ray_channels import Channels
from plugbay.isolation._ray_probe import head_refusal
from plugbay.isolation.ray_head import bootstrap_address, head_unreachable, keep_driver
from plugbay.isolation.ray_settings import RaySettings
from plugbay.isolation.shipping import node_cache_root

__all__ = [
    "forget_local",
    "join",
    "keep_fault_handlers",
    "leave",
    "leave_for_stop",
    "listen",
    "private_token",
    "restore_token_environment",
    "unreachable",
]

log = logging.getLogger("plugbay.isolation.ray")

#: what Ray reads its token authentication from
_TOKEN_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
#: their values before a private cluster's join set them, until it leaves (Ray's own
#: settings are this process's, as its connection is)
_set_by_join: dict[str, str | None] = {}

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


def listen(address: str, origin: str = "host config") -> Channels:
    """The host's listener for its plugins' channels, on ``[ray] listen`` (of the config
    file ``origin``): an address this host cannot bind is refused before Ray is asked."""
    try:
        return Channels(address)
    except OSError as exc:
        raise PlugbayError(
            f"cannot listen for Ray plugins' channels on [ray] listen = {address!r}: this "
            f"host cannot bind it ({exc.strerror or exc}), so no node could reach it",
            where=f"{origin}, [ray] listen",
            hint="set [ray] listen to an address of this machine that the cluster's nodes "
            f"reach: its IP on their network ({_own_addresses()})",
        ) from None


def unreachable(settings: RaySettings, port: int, cause: OSError) -> PlugbayError:
    """A node could not dial the host's channel listener (``[ray] listen``): said in
    plugbay's words, not as Ray's wrapper of the node's error."""
    return PlugbayError(
        f"the plugin's Ray node could not reach this host's channel listener at "
        f"{settings.listen}:{port} ([ray] listen = {settings.listen!r}): "
        f"{cause.strerror or cause}",
        where=f"{settings.origin}, [ray] listen",
        hint="set [ray] listen to this machine's IP on the nodes' network "
        f"({_own_addresses()}), and let the nodes reach it (a firewall may be in the way)",
    )


def _own_addresses() -> str:
    """This machine's IPv4 addresses, for a hint."""
    import psutil

    found = sorted(
        {
            a.address
            for addrs in psutil.net_if_addrs().values()
            for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")
        }
    )
    return "this machine's: " + ", ".join(found) if found else "this machine has no IPv4 one"


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
        private_token(temp_dir)
        options |= {
            "address": "local",
            "include_dashboard": False,
            "object_store_memory": settings.object_store_bytes,
            "_temp_dir": temp_dir,
            "num_cpus": settings.num_cpus,
        }
    else:
        options["address"] = settings.address
        _check_head(settings.address, settings.origin)
    try:
        with keep_fault_handlers():
            ray.init(**options)
    except Exception as exc:
        restore_token_environment()
        if temp_dir is not None and settings.temp_dir is None:  # made for it above
            shutil.rmtree(temp_dir, ignore_errors=True)
        if settings.address == "local":  # no cluster to ask 'ray status': it did not start
            raise PlugbayError(
                f"could not start the host's private Ray cluster ([ray] address = 'local'): {exc}",
                hint=f"correct [ray] num-cpus, object-store or temp-dir in {settings.origin} "
                "as Ray's words say",
            ) from None
        raise PlugbayError(
            f"could not reach the Ray cluster at {settings.address!r}: {exc}",
            hint=f"check [ray] address in {settings.origin} ('ray status --address "
            f"{settings.address}' on this machine, with the cluster's token as on this host, "
            "says whether its head answers)",
        ) from None
    if temp_dir is None:
        return None, None
    return temp_dir, str(ray.get_runtime_context().get_node_id())


def _check_head(address: str, origin: str) -> None:
    """Refuse at once, naming the address, a head that does not answer, that is not a Ray
    head, or whose token authentication is not this host's (``isolation._ray_probe``):
    Ray would wait, or join and then refuse the nodes' calls."""
    joining = f"could not join the Ray cluster ([ray] address = {address!r})"
    problem = head_unreachable(address)
    if problem is not None:
        raise PlugbayError(
            f"{joining}: {problem}",
            hint="start the cluster's head first ('ray start --head' on its machine), "
            "or correct [ray] address in the host config; the plugins not placed on "
            "Ray start meanwhile",
        )
    where = bootstrap_address(address)
    refused = head_refusal(address, where, origin) if where is not None else None
    if refused is not None:
        raise PlugbayError(
            f"{joining}: {refused[0]}",
            hint=f"{refused[1]}; the plugins not placed on Ray start meanwhile",
        )


def private_token(temp_dir: str) -> None:
    """A private cluster's token, in its temp dir. Ray turns token authentication on for
    a cluster it starts and, with no token named, writes one to ``~/.ray/auth_token``,
    where it finds it later and turns token authentication on by itself for every host
    of this user that joins ``"auto"`` (``docs/scale-out.md``). So the token is written
    here and named by ``RAY_AUTH_TOKEN_PATH`` (the cluster's processes inherit it) until
    the host leaves (:func:`restore_token_environment`), then removed. A token the
    operator named, or token authentication turned off (``RAY_AUTH_MODE=disabled``), is
    left as it is. Anything else here that starts a cluster of Ray's own (the bench's Ray
    anchor) keeps its token with this pair too."""
    mode = os.environ.get("RAY_AUTH_MODE", "token").lower()
    if mode != "token" or os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    path = os.path.join(temp_dir, "auth_token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as token:
        token.write(secrets.token_hex(32))  # Ray's own: 256 bits
    _set_by_join.update({name: os.environ.get(name) for name in _TOKEN_ENV})
    os.environ["RAY_AUTH_TOKEN_PATH"] = path
    _refresh_token_config()


def restore_token_environment() -> None:
    """The token variables as they were before ``private_token`` (and Ray, which sets
    ``RAY_AUTH_MODE=token`` for a cluster it starts): a later join is not given them."""
    if not _set_by_join:
        return
    with contextlib.suppress(OSError):  # an operator's [ray] temp-dir outlives it
        os.unlink(os.environ.get("RAY_AUTH_TOKEN_PATH", ""))
    for name, value in _set_by_join.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _set_by_join.clear()
    _refresh_token_config()


def _refresh_token_config() -> None:
    """Ray reads the token variables once per process: it is told they changed. Ray has
    no public way to (2.60: ``ray.init`` reads its cached config; Ray's own
    ``_enable_token_auth`` and its test helpers make these same two private calls), so
    they are guarded: a Ray without them keeps what it read."""
    with contextlib.suppress(ImportError, AttributeError):
        raylet: Any = importlib.import_module("ray._raylet")
        raylet.Config.initialize("")
        raylet.AuthenticationTokenLoader.instance().reset_cache()


def leave(ray: Any, within: float | None = None) -> None:
    """Leave the cluster (a private one stops); blocking, for ``within`` seconds at most
    when given: with its head gone, Ray may wait for it without end (it then waits on in
    a daemon thread, which cannot keep the host from exiting). Whether leaving returns,
    raises or is given up, the token variables a private cluster's join set are put back
    (a later join in this process is not given them)."""
    try:
        with keep_fault_handlers():  # leaving Ray resets them to the default (death)
            if within is None:
                ray.shutdown()
            else:
                _within(ray.shutdown, within)
    finally:
        restore_token_environment()


def leave_for_stop(
    ray: Any, settings: RaySettings, temp_dir: str | None, within: float | None = None
) -> None:
    """:func:`leave`, as the host stops: a leave that fails is logged (what, and what the
    operator may have to do), not raised, so that the host's stop finishes its own work
    (its channel listener, a private cluster's files, its state and its lock)."""
    try:
        leave(ray, within)
    except Exception as exc:
        if settings.address == "local":
            left = (
                "its private cluster's processes (raylet, gcs_server) may still run: find "
                f"them with 'ps -ef | grep {temp_dir}' and end them"
            )
        else:
            left = (
                f"the cluster at {settings.address!r} drops this host as its driver when "
                "the host's process exits; 'ray list actors' there shows whether its "
                "plugbay actors ended"
            )
        log.warning(
            "leaving the Ray cluster ([ray] address = %r) failed as the host stopped: "
            "ray.shutdown() raised %s: %s. The host stopped all the same; %s",
            settings.address, type(exc).__name__, exc, left,
        )  # fmt: skip


def _within(step: Callable[[], object], seconds: float) -> None:
    """``step()`` in a daemon thread, waited for ``seconds`` at most; what it raised is
    raised here."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name="plugbay-ray-leave", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        log.debug("leaving the Ray cluster took over %g s: given up (Ray waits on)", seconds)
    elif failed:
        raise failed[0]


def forget_local(temp_dir: str | None, node: str | None) -> None:
    """What a private cluster left on this machine, once it stopped: its temp directory
    (None: the operator's ``[ray] temp-dir``, kept) and its node's cache. Blocking."""
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)
    if node is not None:
        with contextlib.suppress(PlugbayError):  # not a private directory: left alone
            shutil.rmtree(node_cache_root(node), ignore_errors=True)
