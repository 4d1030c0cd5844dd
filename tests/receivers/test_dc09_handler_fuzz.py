"""Whatever arrives, the receiver's handler answers with what DC-09 prescribes and never raises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.bus.sqlite import SqliteEventLog
from safecity.receivers.dc09 import AccountDirectory, Dc09Handler
from safecity.receivers.dc09_codec import Dc09Account, Dc09Decoder, Dc09Message, encode_frame

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEY = bytes(range(16))


async def _accounts() -> dict[str, Dc09Account]:
    return {"1234": Dc09Account(), "ABCD": Dc09Account(key=KEY)}


def valid_frames() -> list[bytes]:
    return [
        encode_frame("SIA-DCS", sequence=1, account="1234", data="#1234|Nri1/BA01", line="1", timestamp=NOW),
        encode_frame("ADM-CID", sequence=2, account="ABCD", data="#ABCD|1120 01 003", line="2", timestamp=NOW,
                     key=KEY),
        encode_frame("NULL", sequence=0, account="1234", line="1", timestamp=NOW),
    ]


def reply_kind(reply: bytes) -> str:
    if not reply:
        return "NONE"
    decoder = Dc09Decoder()
    decoder.feed(reply)
    message = decoder.next_frame()
    assert isinstance(message, Dc09Message), reply
    return message.protocol_id


@settings(max_examples=300, deadline=None)
@given(
    frame=st.sampled_from(valid_frames()),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    noise=st.binary(max_size=64),
)
def test_mutated_frames_get_a_prescribed_reply_and_never_raise(
    frame: bytes, flips: list[tuple[int, int]], noise: bytes
) -> None:
    data = bytearray(frame)
    for position, value in flips:
        if data:
            data[position % len(data)] = value
    asyncio.run(_exercise(bytes(noise) + bytes(data), expect_ack=not flips))


async def _exercise(stream: bytes, *, expect_ack: bool) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        log = SqliteEventLog(Path(folder) / "events.db")
        await log.start()
        try:
            handler = Dc09Handler(log, AccountDirectory(_accounts), lambda: NOW + timedelta(seconds=1))
            await handler.directory.reload(force=True)
            decoder = Dc09Decoder()
            decoder.feed(stream)
            kinds = []
            while (result := decoder.next_frame()) is not None:
                kinds.append(reply_kind(await handler.handle(result, transport="tcp", peer=None)))
            assert set(kinds) <= {"ACK", "NAK", "DUH", "NONE"}
            if expect_ack:
                assert kinds[-1] == "ACK"
            acked = kinds.count("ACK")
            stored = await log.recent(limit=1000)
            assert (acked == 0) == (stored == [])
        finally:
            await log.close()
