"""The DC-09 receiver over real TCP and UDP sockets, with the embedded event log behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safecity.alarms.events import LinkTestReceived, SignalReceived
from safecity.bus.sqlite import SqliteEventLog
from safecity.receivers.dc09 import AccountDirectory, Dc09Handler, Dc09Server
from safecity.receivers.dc09_codec import Dc09Account, Dc09Decoder, Dc09Message, encode_frame, open_message

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
ACCOUNTS = {"1234": Dc09Account(), "ABCD": Dc09Account(key=KEY), "5678": Dc09Account(clock_offset=timedelta(hours=5))}


@dataclass
class Receiver:
    server: Dc09Server
    log: SqliteEventLog

    async def tcp(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.server.port)


async def _accounts() -> dict[str, Dc09Account]:
    return dict(ACCOUNTS)


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    handler = Dc09Handler(log, AccountDirectory(_accounts), lambda: datetime.now(UTC))
    server = Dc09Server(handler, "127.0.0.1", 0)
    await server.start()
    try:
        yield Receiver(server, log)
    finally:
        await server.stop()
        await log.close()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def panic(sequence: int = 1, account: str = "1234", *, at: datetime | None = None, key: bytes | None = None) -> bytes:
    return encode_frame("SIA-DCS", sequence=sequence, account=account, data=f"#{account}|Nri1/PA015",
                        line="1", receiver="1", timestamp=at or now(), key=key)


async def reply(reader: asyncio.StreamReader, timeout: float = 2.0) -> Dc09Message:
    raw = await asyncio.wait_for(reader.readuntil(b"\r"), timeout)
    decoder = Dc09Decoder()
    decoder.feed(raw)
    message = decoder.next_frame()
    assert isinstance(message, Dc09Message), raw
    return message


async def no_reply(reader: asyncio.StreamReader, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), wait)


async def test_panic_frame_is_in_the_log_when_its_ack_arrives(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    writer.write(panic(42))
    ack = await reply(reader)
    assert (ack.protocol_id, ack.sequence, ack.account, ack.receiver, ack.line) == ("ACK", 42, "1234", "1", "1")
    stored = await receiver.log.recent("alarm.signal_received")
    assert len(stored) == 1
    payload = stored[0].event.typed()
    assert isinstance(payload, SignalReceived)
    assert (payload.account, payload.code, payload.zone, payload.category, payload.priority) == (
        "1234", "PA", "015", "panic", 1)
    writer.close()


async def test_resent_frame_is_acked_again_and_recorded_once(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    frame = panic(7)
    for _ in range(3):
        writer.write(frame)
        assert (await reply(reader)).protocol_id == "ACK"
    assert len(await receiver.log.recent("alarm.signal_received")) == 1
    writer.close()


async def test_encrypted_contact_id_gets_an_encrypted_ack(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    writer.write(encode_frame("ADM-CID", sequence=9999, account="ABCD", data="#ABCD|1130 01 003", line="2",
                              timestamp=now(), key=KEY))
    ack = await reply(reader)
    assert ack.protocol_id == "ACK" and ack.encrypted and ack.sequence == 9999
    opened = open_message(ack, KEY)
    assert opened.timestamp is not None
    [stored] = await receiver.log.recent("alarm.signal_received")
    payload = stored.event.typed()
    assert isinstance(payload, SignalReceived)
    assert (payload.code, payload.zone, payload.partition, payload.category, payload.encrypted) == (
        "E130", "003", "01", "burglary", True)
    writer.close()


async def test_bad_crc_gets_no_reply_and_the_connection_keeps_working(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    frame = bytearray(panic(1))
    frame[1] = ord("0") if frame[1] != ord("0") else ord("1")
    writer.write(bytes(frame))
    await no_reply(reader)
    writer.write(panic(2))
    assert (await reply(reader)).protocol_id == "ACK"
    assert len(await receiver.log.recent("alarm.signal_received")) == 1
    writer.close()


async def test_unknown_account_gets_duh_and_nothing_is_logged(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    writer.write(panic(3, account="9999"))
    assert (await reply(reader)).protocol_id == "DUH"
    assert await receiver.log.recent() == []
    writer.close()


async def test_stale_timestamp_gets_nak_with_receiver_time(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    writer.write(panic(4, at=now() - timedelta(seconds=41)))
    nak = await reply(reader)
    assert nak.protocol_id == "NAK" and nak.timestamp is not None
    assert abs((nak.timestamp - datetime.now(UTC)).total_seconds()) < 5
    assert await receiver.log.recent() == []
    writer.close()


async def test_panel_with_local_clock_is_judged_by_its_offset(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    writer.write(panic(5, account="5678", at=now() + timedelta(hours=5)))
    assert (await reply(reader)).protocol_id == "ACK"
    writer.close()


async def test_link_test_over_udp_is_acked_and_logged(receiver: Receiver) -> None:
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            answers.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", receiver.server.port))
    try:
        transport.sendto(encode_frame("NULL", sequence=0, account="1234", line="1", timestamp=now()))
        raw = await asyncio.wait_for(answers.get(), 2)
    finally:
        transport.close()
    decoder = Dc09Decoder()
    decoder.feed(raw)
    ack = decoder.next_frame()
    assert isinstance(ack, Dc09Message) and ack.protocol_id == "ACK"
    [stored] = await receiver.log.recent("alarm.link_test_received")
    assert isinstance(stored.event.typed(), LinkTestReceived)


async def test_frames_back_to_back_and_byte_by_byte_all_get_acks_in_order(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    stream = b"".join(panic(n) for n in range(10, 20))
    for index in range(0, len(stream), 7):
        writer.write(stream[index : index + 7])
        await writer.drain()
    sequences = [(await reply(reader)).sequence for _ in range(10)]
    assert sequences == list(range(10, 20))
    assert len(await receiver.log.recent("alarm.signal_received")) == 10
    writer.close()


async def test_no_ack_when_the_log_cannot_store(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    await receiver.log.close()
    writer.write(panic(8))
    await no_reply(reader)
    assert receiver.server.handler.stats.append_failures == 1
    writer.close()


async def test_garbage_never_takes_the_receiver_down(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    writer.write(b"\x00\xff" * 500 + b"\n\r\n\"SIA-DCS\"" + bytes(range(256)))
    await writer.drain()
    writer.write(panic(9))
    assert (await reply(reader)).protocol_id == "ACK"
    writer.close()


async def test_ack_latency_is_measured_from_frame_arrival(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    writer.write(panic(11))
    await reply(reader)
    [latency] = receiver.server.handler.stats.ack_latencies
    assert 0 < latency < 5
    writer.close()


async def test_every_link_test_is_a_new_sign_of_life(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    for seconds in (0, 1, 2):  # panels that send every NULL with sequence 0000 and the same content
        writer.write(encode_frame("NULL", sequence=0, account="1234", line="1",
                                  timestamp=now() - timedelta(seconds=10 - seconds)))
        assert (await reply(reader)).protocol_id == "ACK"
    assert len(await receiver.log.recent("alarm.link_test_received")) == 3
    writer.close()


async def test_resend_over_a_backup_line_is_one_event(receiver: Receiver) -> None:
    reader, writer = await receiver.tcp()
    stamp = now()
    for line in ("1", "2"):
        writer.write(encode_frame("SIA-DCS", sequence=33, account="1234", data="#1234|Nri1/PA015", line=line,
                                  receiver="1", timestamp=stamp))
        assert (await reply(reader)).protocol_id == "ACK"
    assert len(await receiver.log.recent("alarm.signal_received")) == 1
    writer.close()


async def test_unknown_accounts_cost_one_lookup_each_not_a_reload() -> None:
    calls: list[list[str] | None] = []

    async def load(numbers: list[str] | None = None) -> dict[str, Dc09Account]:
        calls.append(numbers)
        return {n: a for n, a in ACCOUNTS.items() if numbers is None or n in numbers}

    directory = AccountDirectory(load, load)
    await directory.reload()
    for _ in range(50):  # a flood of frames for a made-up account
        await directory.ensure("DEAD")
    await directory.ensure("1234")  # known: no query
    assert calls == [None, ["DEAD"]]
    assert directory.lookup("DEAD") is None
