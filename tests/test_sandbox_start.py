"""A sandboxed worker's first steps, done with fewer Python objects (``isolation._child``):
each shortcut still confines the worker exactly as the long way did.

Every test runs its attempt in a forked child (``_layer._in_child``), so nothing here
changes the test process: not its environment, its descriptors or its filters.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import mmap
import os
import socket

import pytest

from plugbay.isolation import _child, _seccomp
from plugbay.isolation import limits as L
from plugbay.isolation._layer import _in_child

GRANTS = list(itertools.product([False, True], repeat=5))


def _spec(pid: int, grants: tuple[bool, ...]) -> _seccomp.FilterSpec:
    exec_, processes, tcp, kill_others, notify = grants
    return _seccomp.FilterSpec(
        pid=pid,
        allow_exec=exec_,
        allow_processes=processes,
        allow_tcp=tcp,
        allow_kill_others=kill_others,
        notify=notify,
    )


def test_a_prebuilt_filter_is_the_filter_built_for_the_workers_own_pid() -> None:
    saved = dict(_seccomp._PREBUILT)
    try:
        for grants in GRANTS:
            assert _seccomp.prebuild(_spec(0, grants)), grants
        for grants, pid in itertools.product(GRANTS, (1, 4242, 4_194_304)):
            spec = _spec(pid, grants)
            assert _seccomp.packed(spec) == _seccomp.pack(_seccomp.build(spec)), (grants, pid)
    finally:
        _seccomp._PREBUILT.clear()
        _seccomp._PREBUILT.update(saved)


def test_without_a_prebuilt_filter_the_worker_builds_its_own() -> None:
    saved = dict(_seccomp._PREBUILT)
    try:
        _seccomp._PREBUILT.clear()
        spec = _spec(777, (False, False, True, False, True))
        assert _seccomp.packed(spec) == _seccomp.pack(_seccomp.build(spec))
    finally:
        _seccomp._PREBUILT.update(saved)


def test_a_prebuilt_filter_still_denies_what_it_denied_and_knows_the_worker() -> None:
    """Installed from the template the zygote makes: TCP sockets and fork are refused,
    signals reach the worker itself but not its parent (the pid filled in is its own)."""

    def attempt() -> str:
        assert _seccomp.prebuild(_seccomp.FilterSpec(pid=0))  # what the zygote's warm-up does
        policy = L.SandboxPolicy()
        layer = L.SeccompLayer()
        layer.apply(policy)
        seen = {}
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            seen["tcp"] = "allowed"
        except PermissionError:
            seen["tcp"] = "EPERM"
        try:
            os.kill(os.getppid(), 0)
            seen["parent"] = "allowed"
        except PermissionError:
            seen["parent"] = "EPERM"
        os.kill(os.getpid(), 0)  # raises if the filter did not know this pid
        seen["self"] = "allowed"
        try:
            pid = os.fork()
        except PermissionError:
            seen["fork"] = "EPERM"
        else:
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            seen["fork"] = "allowed"
        return json.dumps(seen)

    ok, message = _in_child("seccomp", attempt)
    assert ok, message
    assert json.loads(message) == {
        "tcp": "EPERM",
        "parent": "EPERM",
        "self": "allowed",
        "fork": "EPERM",
    }


def _environment_of_a_fork(
    granted: tuple[tuple[str, str], ...], late: dict[str, str] | None = None
) -> dict[str, object]:
    """A 'zygote' (forked) sets a host variable, calls base_environment (and sets
    ``late`` after it); its own fork then applies the environment layer and says what
    it sees: ``os.environ``, the C environment's view of the host variable, and how many
    non-zero bytes /proc/self/environ still holds."""

    def zygote() -> str:
        os.environ["HOST_SECRET"] = "s3cret"
        L.base_environment()
        for key, value in (late or {}).items():
            os.environ[key] = value
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                status = L.EnvironLayer().apply(L.SandboxPolicy(environment=granted))
                libc = ctypes.CDLL(None)
                libc.getenv.restype = ctypes.c_char_p
                with open("/proc/self/environ", "rb") as f:
                    block = f.read()
                reply = {
                    "environ": dict(os.environ),
                    "c_secret": libc.getenv(b"HOST_SECRET"),
                    "c_granted": libc.getenv(b"GRANTED"),
                    "exec_block_bytes": len(block.replace(b"\0", b"")),
                    "detail": status.detail,
                }
                os.write(write_end, json.dumps(reply, default=lambda b: b.decode()).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        data = b""
        while chunk := os.read(read_end, 65536):
            data += chunk
        os.waitpid(pid, 0)
        return data.decode()

    ok, message = _in_child("environ", zygote)
    assert ok, message
    return dict(json.loads(message))


def test_a_worker_of_a_based_zygote_sees_the_base_and_its_grants_only() -> None:
    seen = _environment_of_a_fork((("GRANTED", "yes"), ("LANG", "de_DE.UTF-8")))
    assert seen["environ"] == {**L.BASE_ENVIRONMENT, "GRANTED": "yes", "LANG": "de_DE.UTF-8"}
    assert seen["c_secret"] is None
    assert seen["c_granted"] == "yes"
    assert seen["exec_block_bytes"] == 0
    assert "bytes of exec-time environment wiped" in str(seen["detail"])


def test_a_zygote_whose_environment_changed_after_its_base_is_cleared_again() -> None:
    seen = _environment_of_a_fork((), late={"LATE_HOST_VARIABLE": "x"})
    assert seen["environ"] == L.BASE_ENVIRONMENT
    assert seen["c_secret"] is None


def test_closing_inherited_descriptors_keeps_the_channel_and_the_report_socket() -> None:
    fds = [fd for pair in (os.pipe() for _ in range(4)) for fd in pair]
    channel, report = fds[2], fds[7]  # the write end of the last pipe carries the answer
    try:
        pid = os.fork()
        if pid == 0:
            try:
                _child._close_other_fds(channel, report)
                still = []
                for fd in (0, 1, 2, *fds):
                    try:
                        os.fstat(fd)
                        still.append(fd)
                    except OSError:
                        pass
                os.write(report, json.dumps(still).encode())
            finally:
                os._exit(0)
        os.close(report)
        data = b""
        while chunk := os.read(fds[6], 65536):
            data += chunk
        os.waitpid(pid, 0)
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    assert json.loads(data) == [0, 1, 2, channel, report]


def test_reserved_address_space_is_counted_from_the_maps_bytes() -> None:
    # PROT_NONE, private and anonymous: "---p" with no path, as a thread arena's guard
    reserved = mmap.mmap(-1, 1 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=0)
    try:
        expected = 0
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 5 and parts[1] == "---p":
                    low, high = (int(x, 16) for x in parts[0].split("-"))
                    expected += high - low
        assert expected >= 1 << 20
        assert L._reserved_bytes() == expected
    finally:
        reserved.close()


def test_a_proc_file_written_without_a_file_object_still_reports_its_error() -> None:
    with pytest.raises(FileNotFoundError, match="No such file"):
        L._write("/proc/self/does-not-exist", b"deny")
