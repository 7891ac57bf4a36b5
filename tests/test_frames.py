"""The wire's channel on its fast paths: a read that is one whole frame, and a lone answer
written from the buffer it was encoded in, keep every check of the general path."""

from __future__ import annotations

import socket

from plugbay.isolation import frames
from tests._recording import Recording


def _channel(got: list[frames.Message], closed: list[tuple[str | None, bool]]) -> frames.Channel:
    return frames.Channel(got.append, lambda reason, protocol: closed.append((reason, protocol)))


def test_a_frame_over_a_lowered_limit_is_refused_when_it_arrives_whole() -> None:
    got: list[frames.Message] = []
    closed: list[tuple[str | None, bool]] = []
    channel = _channel(got, closed)
    channel.max_frame = 64
    small = frames.encode(frames.Ping(1))
    channel.data_received(small)
    assert got == [frames.Ping(1)]
    large = frames.encode(frames.Log(20, "x", "y" * 100))
    channel.data_received(large)
    assert closed == [(f"a frame of {len(large) - 4} bytes is over the 64-byte limit", True)]
    assert got == [frames.Ping(1)]  # nothing of it was handed on


def test_a_large_frame_the_reader_skips_is_not_decoded_when_it_arrives_whole() -> None:
    """A flood of huge log records is thrown away by its kind and size, never decoded,
    whether it arrives in pieces or whole; the frame after it is handed on."""
    got: list[frames.Message] = []
    closed: list[tuple[str | None, bool]] = []
    shown: list[tuple[str, int]] = []
    channel = _channel(got, closed)
    channel.skip_above = 100

    def skip(kind: str, size: int) -> bool:
        shown.append((kind, size))
        return kind == "Log"

    channel.skip = skip
    flood = frames.encode(frames.Log(20, "x", "y" * 1000))
    channel.data_received(flood)
    channel.data_received(frames.encode(frames.Ping(2)))
    assert shown == [("Log", len(flood) - 4)]
    assert got == [frames.Ping(2)] and not closed
    big_reply = frames.encode(frames.Reply(3, "z" * 1000))
    channel.data_received(big_reply)  # shown, kept: decoded and handed on
    assert got == [frames.Ping(2), frames.Reply(3, "z" * 1000)]


def test_a_malformed_or_foreign_frame_read_whole_stops_the_peer() -> None:
    got: list[frames.Message] = []
    closed: list[tuple[str | None, bool]] = []
    channel = _channel(got, closed)
    body = b"\x82\xa4type\xa5Bogus\xa2id\x01"  # a message kind the wire does not have
    channel.data_received(len(body).to_bytes(4, "big") + body)
    assert closed and closed[0][1] is True and "malformed frame" in str(closed[0][0])
    assert not got


async def test_answers_sent_during_reads_leave_as_lone_frames_or_one_many_frame() -> None:
    """A worker answering as it reads: one call read, one answer written (a frame of its
    own, from the buffer it was encoded in); three calls read at once, their answers in
    one ``Many`` frame; then one again. The peer reads each answer, in order."""
    worker: frames.Channel

    def answer(message: frames.Message) -> None:
        assert isinstance(message, frames.Call)
        worker.send(frames.Reply(message.id, message.params["x"] * 2))

    worker = frames.Channel(answer, lambda r, p: None)
    transport = Recording()
    worker.connection_made(transport)
    worker.data_received(frames.encode(frames.Call(1, "double", {"x": 1})))
    worker.data_received(
        b"".join(frames.encode(frames.Call(i, "double", {"x": i})) for i in (2, 3, 4))
    )
    worker.data_received(frames.encode(frames.Call(5, "double", {"x": 5})))
    assert len(transport.writes) == 3  # one write per read
    assert transport.writes[0] == frames.encode(frames.Reply(1, 2))
    assert transport.writes[2] == frames.encode(frames.Reply(5, 10))
    got: list[frames.Message] = []
    host = frames.Channel(got.append, lambda r, p: None)
    host.data_received(transport.writes[1])  # the Many frame, whole
    host.data_received(b"".join(transport.writes))
    replies = [frames.Reply(i, 2 * i) for i in (2, 3, 4)]
    assert got == [*replies, frames.Reply(1, 2), *replies, frames.Reply(5, 10)]


async def test_frames_a_round_trip_reads_past_its_answer_are_handed_on_after_it() -> None:
    """A def command calling the host synchronously (``round_trip``) inside the read of
    its call: the host's next frame, read with the answer, is handed on once the
    command is done, not lost."""
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        got: list[frames.Message] = []
        answers: list[frames.Message] = []
        channel: frames.Channel

        def on_message(message: frames.Message) -> None:
            got.append(message)
            if isinstance(message, frames.Call):
                theirs.sendall(
                    frames.encode(frames.HostReply(7, "stored")) + frames.encode(frames.Ping(8))
                )
                answers.append(
                    channel.round_trip(
                        ours.fileno(),
                        frames.HostCall(7, "host", "store", {}),
                        frames.HostReply,
                        lambda m: isinstance(m, frames.HostReply) and m.id == 7,
                        5.0,
                    )
                )

        channel = frames.Channel(on_message, lambda r, p: None)
        channel.connection_made(Recording())
        channel.data_received(frames.encode(frames.Call(1, "save", {})))
        assert answers == [frames.HostReply(7, "stored")]
        assert got == [frames.Call(1, "save", {}), frames.Ping(8)]
        sent = theirs.recv(1 << 16)
        assert frames.decode(sent[4:]) == frames.HostCall(7, "host", "store", {})
    finally:
        ours.close()
        theirs.close()


async def test_a_lone_call_is_answered_at_once_after_what_its_command_sent() -> None:
    """A worker's ``answer`` takes a call that came alone in its read: its frame is the
    read's one write, after a frame the command sent meanwhile (a log record), and a
    call it declines goes to ``on_message``; calls read together never reach it (their
    answers join one ``Many`` frame)."""
    got: list[frames.Message] = []
    answered: list[int] = []
    worker = frames.Channel(got.append, lambda r, p: None)
    transport = Recording()
    worker.connection_made(transport)

    def answer(call: frames.Call) -> bytes | None:
        if call.command != "double":
            return None
        answered.append(call.id)
        if call.params.get("log"):
            worker.send(frames.Log(20, "plugbay.plugin.acme", "doubling"))
        return frames.encode(frames.Reply(call.id, call.params["x"] * 2))

    worker.answer = answer
    worker.data_received(frames.encode(frames.Call(1, "double", {"x": 1})))
    assert transport.writes == [frames.encode(frames.Reply(1, 2))]
    worker.data_received(frames.encode(frames.Call(2, "double", {"x": 2, "log": True})))
    assert len(transport.writes) == 2  # one write for the read
    host: list[frames.Message] = []
    frames.Channel(host.append, lambda r, p: None).data_received(transport.writes[1])
    assert host == [frames.Log(20, "plugbay.plugin.acme", "doubling"), frames.Reply(2, 4)]
    worker.data_received(frames.encode(frames.Call(3, "slow", {})))
    assert got == [frames.Call(3, "slow", {})] and len(transport.writes) == 2
    worker.data_received(
        b"".join(frames.encode(frames.Call(i, "double", {"x": i})) for i in (4, 5))
    )
    assert answered == [1, 2]  # not asked for calls read together
    assert got[1:] == [frames.Call(4, "double", {"x": 4}), frames.Call(5, "double", {"x": 5})]
