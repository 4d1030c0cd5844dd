"""SIA DC-09 receiver codec, sans-I/O: stream bytes in, typed messages and reply bytes out.

The habit is h11's: the server feeds whatever the socket delivered to a `Dc09Decoder` and pulls
`FrameResult`s; `decide` says which reply DC-09 prescribes for each, `encode_reply` writes it. Nothing
here touches a socket or reads the clock: ``now`` is always an argument. The frame layer lives in
`dc09_frame`, the encryption in `dc09_crypto`, the data blocks in `sia_dcs` and `contact_id`; the
names a server needs are re-exported here so it imports one module.

Replies, per DC-09:
- frame not intact (framing, length, CRC, unreadable header): no reply, the panel retries;
- timestamp missing (encrypted), unreadable or outside the window: NAK with the receiver's time;
- intact but unprocessable (unknown id token or account, no key, will not decrypt, unreadable
  content, unknown event code): DUH;
- otherwise ACK, encrypted when the message was.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from safecity.receivers.contact_id import (
    ContactIdError,
    ContactIdEvent,
    classify_contact_id,
    parse_contact_id,
)
from safecity.receivers.dc09_crypto import KEY_SIZES, RandomBytes, decrypt_content, encrypt_content
from safecity.receivers.dc09_errors import (
    ContentError,
    CrcError,
    Dc09Error,
    DecryptionError,
    FrameError,
    LengthError,
    TimestampError,
)
from safecity.receivers.dc09_frame import (
    EVENT_IDS,
    REPLY_IDS,
    Dc09Message,
    ExtendedData,
    crc16,
    encode_frame,
    encode_nak_frame,
    format_timestamp,
    has_binary_crc,
    open_message,
    parse_frame,
    parse_timestamp,
)
from safecity.receivers.sia_codes import classify_sia
from safecity.receivers.sia_dcs import SiaDataError, SiaEvent, SiaReport, format_sia_data, parse_sia_data

__all__ = [
    "DEFAULT_WINDOW",
    "EVENT_IDS",
    "KEY_SIZES",
    "REPLY_IDS",
    "ContentError",
    "CrcError",
    "Dc09Account",
    "Dc09Decoder",
    "Dc09Error",
    "Dc09Message",
    "Decision",
    "DecryptionError",
    "ExtendedData",
    "FrameError",
    "FrameFailure",
    "FrameResult",
    "LengthError",
    "Reply",
    "SiaEvent",
    "SiaReport",
    "TimestampError",
    "TimestampWindow",
    "assess",
    "check_content",
    "check_timestamp",
    "crc16",
    "decide",
    "decrypt_content",
    "dedup_key",
    "encode_ack",
    "encode_duh",
    "encode_frame",
    "encode_nak",
    "encode_reply",
    "encrypt_content",
    "format_sia_data",
    "format_timestamp",
    "next_sequence",
    "open_message",
    "parse_events",
    "parse_frame",
    "parse_sia_data",
    "parse_timestamp",
]

MAX_FRAME = 0xFFF + 16  # longest body the length field allows, plus LF, CRC, length and CR
_SHORTEST_HEAD = 8  # LF, two binary CRC bytes, "0LLL" and the opening quote


class Reply(StrEnum):
    ACK = "ACK"
    NAK = "NAK"
    DUH = "DUH"
    NONE = "NONE"  # say nothing: the panel will retry


@dataclass(frozen=True, slots=True)
class Dc09Account:
    """What the receiver knows of one panel account.

    `clock_offset` is how far the panel's clock is known to run ahead of ours (negative: behind), so
    a panel that keeps a steady skew is judged against its own clock. An account with a key refuses
    plain messages unless `allow_plaintext`, since anyone can forge those.
    """

    key: bytes | None = None
    clock_offset: timedelta = timedelta(0)
    allow_plaintext: bool = False


AccountLookup = Callable[[str], Dc09Account | None]


@dataclass(frozen=True, slots=True)
class TimestampWindow:
    """How far a message timestamp may lead or lag the receiver's clock (DC-09: +20 s / -40 s)."""

    ahead: timedelta = timedelta(seconds=20)
    behind: timedelta = timedelta(seconds=40)

    def contains(self, timestamp: datetime, now: datetime) -> bool:
        return -self.behind <= timestamp - now <= self.ahead


DEFAULT_WINDOW = TimestampWindow()


@dataclass(frozen=True, slots=True)
class FrameFailure:
    """A frame the decoder could not turn into an open message; `message` holds what was read."""

    error: Dc09Error
    raw: bytes
    message: Dc09Message | None = None

    @property
    def reply(self) -> Reply:
        if isinstance(self.error, FrameError) or self.message is None:
            return Reply.NONE
        return Reply.DUH


FrameResult = Dc09Message | FrameFailure


@dataclass(frozen=True, slots=True)
class Decision:
    reply: Reply
    reason: str
    message: Dc09Message | None = None  # the opened (decrypted) message, when the reply is ACK


class Dc09Decoder:
    """Cut a TCP byte stream into frames and read them; never raises on bad input.

    Frames run from LF to CR. Bytes outside a frame are dropped, and an LF inside a frame restarts
    it, so the decoder falls back into step after garbage or a truncated frame. With `accounts` the
    decoder decrypts encrypted frames; without a key they come out unopened and `decide` says DUH.
    """

    def __init__(self, accounts: AccountLookup | None = None, *, max_frame: int = MAX_FRAME) -> None:
        self._accounts = accounts
        self._max_frame = max_frame
        self._buffer = bytearray()
        self.discarded_bytes = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> FrameResult | None:
        """The next complete frame, or None until more bytes arrive.

        Every choice depends on the bytes alone, never on how they were split into `feed` calls, so a
        stream fed whole, byte by byte or in any chunks gives the same results.
        """
        while True:
            start = self._buffer.find(b"\n")
            if start < 0:
                self._discard(len(self._buffer))
                return None
            self._discard(start)
            if len(self._buffer) < _SHORTEST_HEAD:
                return None
            # A binary CRC may itself be an LF or CR byte: look for delimiters only after it.
            after_crc = 3 if has_binary_crc(bytes(self._buffer[1:_SHORTEST_HEAD])) else 1
            limit = self._max_frame + 1  # a CR at or beyond this index comes too late
            end = self._buffer.find(b"\r", after_crc, limit)
            restart = self._buffer.find(b"\n", after_crc, end if end >= 0 else limit)
            if restart > 0:
                self._discard(restart)
                continue
            if end < 0:
                if len(self._buffer) < limit:
                    return None
                raw = bytes(self._buffer[:limit])
                self._discard(limit)
                return FrameFailure(FrameError("no end of frame within the longest frame DC-09 allows"), raw)
            raw = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            return self._read(raw)

    def frames(self) -> list[FrameResult]:
        """Every complete frame fed so far."""
        results: list[FrameResult] = []
        while (result := self.next_frame()) is not None:
            results.append(result)
        return results

    def _discard(self, count: int) -> None:
        self.discarded_bytes += count
        del self._buffer[:count]

    def _read(self, raw: bytes) -> FrameResult:
        try:
            message = parse_frame(raw)
        except Dc09Error as error:
            return FrameFailure(error, raw)
        key = None
        if message.encrypted:
            account = self._lookup(message)
            if account is None or account.key is None:
                return message  # unopened; `decide` explains the DUH
            key = account.key
        try:
            return open_message(message, key)
        except Dc09Error as error:
            return FrameFailure(error, raw, message)

    def _lookup(self, message: Dc09Message) -> Dc09Account | None:
        account_id = message.account_id
        if self._accounts is None or account_id is None:
            return None
        return self._accounts(account_id)


def parse_events(message: Dc09Message) -> tuple[SiaEvent, ...] | tuple[ContactIdEvent, ...]:
    """The events an open message reports; raises `ContentError` when its data cannot be read."""
    if message.data is None:
        raise ContentError("message content is not open")
    if message.protocol_id == "NULL":
        return ()
    if message.protocol_id == "ADM-CID":
        block = message.data.split("|", 1)[-1]
        try:
            return (parse_contact_id(block),)
        except ContactIdError as error:
            raise ContentError(str(error)) from None
    if message.protocol_id == "SIA-DCS":
        try:
            return parse_sia_data(message.data).events
        except SiaDataError as error:
            raise ContentError(str(error)) from None
    raise ContentError(f"no events in a {message.protocol_id!r} message")


def check_timestamp(
    message: Dc09Message, *, now: datetime, account: Dc09Account, window: TimestampWindow = DEFAULT_WINDOW
) -> None:
    """Raise `TimestampError` when an open message fails DC-09's timestamp test for `account`."""
    if message.timestamp is None:
        if message.timestamp_text is not None:
            raise TimestampError(f"unreadable timestamp {message.timestamp_text!r}")
        if message.encrypted:
            raise TimestampError("encrypted message without timestamp")
        return
    if not window.contains(message.timestamp, now + account.clock_offset):
        raise TimestampError(f"timestamp {format_timestamp(message.timestamp)} outside the window")


def check_content(message: Dc09Message) -> None:
    """Raise `ContentError` unless every event of an open message is readable and in the code tables."""
    events = parse_events(message)
    if message.protocol_id == "SIA-DCS" and not events:
        raise ContentError("SIA-DCS message without an event")
    for event in events:
        if isinstance(event, SiaEvent):
            known = classify_sia(event.code) is not None
        else:
            known = classify_contact_id(event.qualifier, event.code) is not None
        if not known:
            raise ContentError(f"unknown event code {event.code!r}")


def assess(
    result: FrameResult,
    *,
    now: datetime,
    accounts: AccountLookup,
    window: TimestampWindow = DEFAULT_WINDOW,
) -> Decision:
    """The reply DC-09 prescribes for `result`, with the reason for the log.

    `now` is the receiver's clock, timezone-aware; a naive one is a programming error, not a frame's.
    """
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    if isinstance(result, FrameFailure):
        return Decision(result.reply, str(result.error))
    message = result
    if message.protocol_id in REPLY_IDS:
        return Decision(Reply.NONE, "a reply is never answered")
    if message.protocol_id not in EVENT_IDS:
        return Decision(Reply.DUH, f"unknown id token {message.protocol_id!r}")
    account_id = message.account_id
    account = None if account_id is None else accounts(account_id)
    if account is None:
        return Decision(Reply.DUH, f"unknown account {account_id!r}")
    if not message.encrypted and account.key is not None and not account.allow_plaintext:
        return Decision(Reply.DUH, "plain message for an account that requires encryption")
    try:
        message = open_message(message, account.key)
        check_timestamp(message, now=now, account=account, window=window)
        check_content(message)
    except TimestampError as error:
        return Decision(Reply.NAK, str(error))
    except Dc09Error as error:
        return Decision(Reply.DUH, str(error))
    return Decision(Reply.ACK, "ok", message)


def decide(
    result: FrameResult,
    *,
    now: datetime,
    accounts: AccountLookup,
    window: TimestampWindow = DEFAULT_WINDOW,
) -> Reply:
    return assess(result, now=now, accounts=accounts, window=window).reply


def encode_ack(
    message: Dc09Message, *, now: datetime, key: bytes | None = None, random_bytes: RandomBytes = os.urandom
) -> bytes:
    """ACK echoing sequence, receiver, line and account; encrypted (with a timestamp) when `message` was."""
    if message.encrypted and key is None:
        raise DecryptionError("an encrypted message needs its key for the ACK")
    return encode_frame(
        "ACK",
        sequence=message.sequence,
        receiver=message.receiver,
        line=message.line,
        account=message.account,
        timestamp=now if message.encrypted else None,
        key=key if message.encrypted else None,
        random_bytes=random_bytes,
        binary_crc=message.binary_crc,
    )


def encode_duh(message: Dc09Message) -> bytes:
    """DUH is never encrypted: the receiver may not have a key that works for this panel."""
    return encode_frame(
        "DUH",
        sequence=message.sequence,
        receiver=message.receiver,
        line=message.line,
        account=message.account,
        binary_crc=message.binary_crc,
    )


def encode_nak(now: datetime, *, binary_crc: bool = False) -> bytes:
    return encode_nak_frame(now, binary_crc)


def encode_reply(reply: Reply, result: FrameResult, *, now: datetime, key: bytes | None = None) -> bytes:
    """The bytes to send for a decided reply; empty for `Reply.NONE` or when there is nothing to echo."""
    message = result.message if isinstance(result, FrameFailure) else result
    if reply is Reply.NAK:
        return encode_nak(now, binary_crc=message is not None and message.binary_crc)
    if reply is Reply.NONE or message is None:
        return b""
    if reply is Reply.DUH:
        return encode_duh(message)
    return encode_ack(message, now=now, key=key)


def next_sequence(sequence: int) -> int:
    """Panels number messages 0001-9999 and wrap to 0001; 0000 is kept for link tests."""
    return 1 if sequence >= 9999 else sequence + 1


def dedup_key(message: Dc09Message) -> str:
    """Same key for a retransmission of the same event, a different one for the next event.

    The timestamp and pad are left out of an event's hash: a panel re-sending after a lost ACK may
    restamp. Receiver and line are left out too, so a re-send over a backup path is still one event
    (account numbers are unique across the centre). Link tests (NULL) carry no content and many
    panels send them all with sequence 0000, so their timestamp is part of the key: each link test is
    a new sign of life. The log keeps keys for a window (hours), so a wrapped sequence repeating old
    content days later is a new event.
    """
    if message.data is None:
        raise ContentError("dedup key needs the opened content")
    parts = [message.protocol_id, message.data, message.extended.to_text()]
    if message.protocol_id == "NULL":
        parts.append(message.timestamp_text or "")
    digest = hashlib.sha256("\x1f".join(parts).encode("latin-1")).hexdigest()
    return f"{message.account_id or '-'}/{message.sequence:04d}/{digest}"
