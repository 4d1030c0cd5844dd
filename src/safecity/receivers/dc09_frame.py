"""The DC-09 frame: bytes to a typed message and back, with no sockets and no clock.

On the wire a frame is ``LF crc(4 hex) 0LLL "id" seq [Rrcvr] Lline #acct [ content CR``. The CRC
(CRC-16/ARC) and the length cover everything from the first ``"`` to the last byte before CR; some
communicators (DC-09 "2012" modes, OPAX, Trikdis) send the CRC as two raw bytes, high byte first. The
content is ``data]`` then optional extended blocks ``[X…][Y…][H…][M…][V…]`` then ``_HH:MM:SS,MM-DD-YYYY``;
when the id starts with ``*`` the content is AES ciphertext in hex (see `dc09_crypto`).

Reading is done in two steps because the second needs a key: `parse_frame` checks the envelope and
reads the header, `open_message` decrypts if needed and reads the content. Header fields are kept as
sent (case, leading zeros) so replies can echo them exactly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from fastcrc import crc16 as _fastcrc16

from safecity.receivers.dc09_crypto import RandomBytes, decrypt_content, encrypt_content
from safecity.receivers.dc09_errors import ContentError, CrcError, DecryptionError, FrameError, LengthError

EVENT_IDS = frozenset({"SIA-DCS", "ADM-CID", "NULL"})
REPLY_IDS = frozenset({"ACK", "NAK", "DUH", "RSP"})
MAX_BODY = 0xFFF  # the length field is "0" and three hex digits
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

_HEADER = re.compile(
    r'"(?P<star>\*?)(?P<id>[!#-~]{1,32})"'  # any printable token: unknown ones earn DUH, not silence
    r"(?P<seq>[0-9]{4})"
    r"(?:R(?P<receiver>[0-9A-Fa-f]{1,6}))?"
    r"L(?P<line>[0-9A-Fa-f]{0,6})"  # some panels send a bare "L"; a NAK's "L0A0" reads as line "0A0"
    r"(?:R(?P<late_receiver>[0-9A-Fa-f]{1,6}))?"  # pysiaalarm's NAK puts R after L
    r"(?:#(?P<account>[0-9A-Fa-f]{3,16}))?"
    r"\["
)
_TIMESTAMP = re.compile(r"(\d{2}):(\d{2}):(\d{2}),(\d{2})-(\d{2})-(\d{4})")
_COORDINATE = re.compile(r"([NSEW+-]?)(\d{1,3}(?:\.\d+)?)([NSEW]?)")
_COORDINATE_SPLIT = re.compile(r"(\d{1,3})([NSEW])(\d+)")  # "030E1234": degrees, hemisphere, fraction


def crc16_reference(data: bytes) -> int:
    """The same CRC in plain Python, table-driven: the reference the tests hold `crc16` to."""
    crc = 0
    table = _CRC16_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _crc16_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC-16/ARC (polynomial 0xA001 reflected, initial value 0), as DC-09 prescribes.

    From `fastcrc` (compiled): in Python the CRC was most of the receiver's CPU per frame.
    """
    return int(_fastcrc16.arc(data))


def format_timestamp(moment: datetime) -> str:
    """``HH:MM:SS,MM-DD-YYYY`` in UTC, the form of message timestamps and NAK replies."""
    return _utc(moment).strftime("%H:%M:%S,%m-%d-%Y")


def parse_timestamp(text: str) -> datetime | None:
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    hour, minute, second, month, day, year = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("DC-09 times must be timezone-aware")
    return moment.astimezone(UTC)


def parse_coordinate(text: str, positive: str, negative: str) -> float | None:
    """Decimal degrees from ``E030.1234``, ``030.1234E``, ``-30.1234`` or ``030E1234``; None if unreadable."""
    limit = 90.0 if positive == "N" else 180.0
    split = _COORDINATE_SPLIT.fullmatch(text.strip())
    if split is not None:
        degrees, hemisphere, fraction = split.groups()
        prefix, number, suffix = hemisphere, f"{degrees}.{fraction}", ""
    else:
        match = _COORDINATE.fullmatch(text.strip())
        if match is None:
            return None
        prefix, number, suffix = match.groups()
    signs = {s for s in (prefix, suffix) if s}
    if len(signs) > 1 or not signs <= {positive, negative, "+", "-"}:
        return None
    value = float(number) * (-1.0 if signs & {negative, "-"} else 1.0)
    return value if -limit <= value <= limit else None


def format_longitude(value: float) -> str:
    return f"{'W' if value < 0 else 'E'}{abs(value):010.6f}"


def format_latitude(value: float) -> str:
    return f"{'S' if value < 0 else 'N'}{abs(value):09.6f}"


@dataclass(frozen=True, slots=True)
class ExtendedData:
    """The ``[X…]``-style blocks after the data, raw and in order, with the common ones read."""

    blocks: tuple[tuple[str, str], ...] = ()
    longitude: float | None = None
    latitude: float | None = None
    panel_time: datetime | None = None
    mac: str | None = None
    verification: str | None = None

    @classmethod
    def from_blocks(cls, blocks: Sequence[tuple[str, str]]) -> ExtendedData:
        values = {identifier: value for identifier, value in blocks}
        longitude, latitude, panel_time = values.get("X"), values.get("Y"), values.get("H")
        return cls(
            blocks=tuple(blocks),
            longitude=None if longitude is None else parse_coordinate(longitude, "E", "W"),
            latitude=None if latitude is None else parse_coordinate(latitude, "N", "S"),
            panel_time=None if panel_time is None else parse_timestamp(panel_time),
            mac=values.get("M"),
            verification=values.get("V"),
        )

    @classmethod
    def build(
        cls,
        *,
        longitude: float | None = None,
        latitude: float | None = None,
        panel_time: datetime | None = None,
        mac: str | None = None,
        verification: str | None = None,
        other: Sequence[tuple[str, str]] = (),
    ) -> ExtendedData:
        """Extended data for encoding, in the order DC-09 lists the blocks."""
        blocks: list[tuple[str, str]] = []
        if longitude is not None:
            blocks.append(("X", format_longitude(longitude)))
        if latitude is not None:
            blocks.append(("Y", format_latitude(latitude)))
        if panel_time is not None:
            blocks.append(("H", format_timestamp(panel_time)))
        if mac is not None:
            blocks.append(("M", mac))
        if verification is not None:
            blocks.append(("V", verification))
        return cls.from_blocks([*blocks, *other])

    def to_text(self) -> str:
        return "".join(f"[{identifier}{value}]" for identifier, value in self.blocks)


@dataclass(frozen=True, slots=True)
class Dc09Message:
    """One DC-09 frame, event or reply. `data` is None until the content is opened (decrypted)."""

    protocol_id: str
    encrypted: bool
    sequence: int
    receiver: str | None
    line: str
    account: str | None
    body: str = field(repr=False)  # everything after the header's "[", as transmitted
    raw: bytes = field(repr=False)
    data: str | None = None
    extended: ExtendedData = ExtendedData()
    timestamp: datetime | None = None
    timestamp_text: str | None = None  # as sent, kept so an unreadable one can be reported
    binary_crc: bool = False  # replies go back in the same form

    @property
    def is_open(self) -> bool:
        return self.data is not None

    @property
    def account_id(self) -> str | None:
        """The account in upper case, from the header or, failing that, the ``#acct|`` of the data."""
        if self.account:
            return self.account.upper()
        if self.data and "|" in self.data:
            prefix = self.data.split("|", 1)[0].lstrip("#")
            if 3 <= len(prefix) <= 16 and _HEX_DIGITS.issuperset(prefix):
                return prefix.upper()
        return None


def _frame_text(frame: bytes) -> str:
    if frame[:1] == b"\n":
        frame = frame[1:]
    if frame[-1:] == b"\r":
        frame = frame[:-1]
    # Latin-1 maps every byte, so zone names in Windows-1252 survive; the header grammar is ASCII.
    return frame.decode("latin-1")


def has_binary_crc(frame: bytes) -> bool:
    """True when `frame` (starting after its LF) carries a two-byte binary CRC before ``0LLL"``."""
    return frame[6:7] == b'"' and _HEX_DIGITS.issuperset(frame[2:6].decode("latin-1"))


def parse_frame(frame: bytes) -> Dc09Message:
    """Check CRC and length and read the header; raises `FrameError` when the frame is not intact.

    Accepts the frame with or without its LF and CR, with a hex or a binary CRC. The content is left
    unopened.
    """
    text = _frame_text(frame)
    binary_crc = has_binary_crc(text.encode("latin-1"))
    if binary_crc:
        sent_crc, length_text, body = ord(text[0]) << 8 | ord(text[1]), text[2:6], text[6:]
    else:
        crc_text, length_text, body = text[:4], text[4:8], text[8:]
        if not body.startswith('"') or not _HEX_DIGITS.issuperset(crc_text + length_text):
            raise FrameError("frame does not start with CRC and length in hex")
        sent_crc = int(crc_text, 16)
    sent_length = int(length_text, 16)
    if sent_length != len(body):
        raise LengthError(f"length field says {sent_length}, frame has {len(body)}")
    actual_crc = crc16(body.encode("latin-1"))
    if sent_crc != actual_crc:
        raise CrcError(f"CRC field says {sent_crc:04X}, content gives {actual_crc:04X}")
    header = _HEADER.match(body)
    if header is None:
        raise FrameError("header is not DC-09")
    return Dc09Message(
        protocol_id=header["id"],
        encrypted=bool(header["star"]),
        sequence=int(header["seq"]),
        receiver=header["receiver"] or header["late_receiver"],
        line=header["line"],
        account=header["account"],
        body=body[header.end() :],
        raw=b"\n" + text.encode("latin-1") + b"\r",
        binary_crc=binary_crc,
    )


def _read_content(content: str) -> tuple[str, ExtendedData, str | None]:
    """Split ``data]`` + blocks + ``_timestamp`` into its parts."""
    close = content.find("]")
    if close < 0 or "[" in content[:close]:
        raise ContentError("data block is not closed by ']'")
    data, rest = content[:close], content[close + 1 :]
    blocks: list[tuple[str, str]] = []
    while rest.startswith("["):
        end = rest.find("]")
        if end < 2:
            raise ContentError("extended data block is empty or not closed")
        blocks.append((rest[1], rest[2:end]))
        rest = rest[end + 1 :]
    if rest and not rest.startswith("_") and not _TIMESTAMP.match(rest):
        raise ContentError(f"unexpected text after the data: {rest[:20]!r}")
    return data, ExtendedData.from_blocks(blocks), rest.removeprefix("_") or None


def open_message(message: Dc09Message, key: bytes | None = None) -> Dc09Message:
    """Decrypt (with `key`) and read the content; raises `DecryptionError` or `ContentError`."""
    if message.is_open:
        return message
    content = message.body
    if message.encrypted:
        if key is None:
            raise DecryptionError("encrypted message and no key for its account")
        content = decrypt_content(content, key)
    data, extended, timestamp_text = _read_content(content)
    return replace(
        message,
        data=data,
        extended=extended,
        timestamp=None if timestamp_text is None else parse_timestamp(timestamp_text),
        timestamp_text=timestamp_text,
    )


def _header(protocol_id: str, encrypted: bool, sequence: int, receiver: str | None, line: str) -> str:
    if not 0 <= sequence <= 9999:
        raise ValueError(f"sequence {sequence} is outside 0000-9999")
    star = "*" if encrypted else ""
    return f'"{star}{protocol_id}"{sequence:04d}{"" if receiver is None else "R" + receiver}L{line}'


def _wrap(body: str, binary_crc: bool = False) -> bytes:
    encoded = body.encode("latin-1")
    if len(encoded) > MAX_BODY:
        raise ValueError(f"frame content of {len(encoded)} bytes exceeds the length field")
    crc = crc16(encoded)
    crc_field = crc.to_bytes(2, "big") if binary_crc else f"{crc:04X}".encode("ascii")
    return b"\n" + crc_field + f"{len(encoded):04X}".encode("ascii") + encoded + b"\r"


def encode_frame(
    protocol_id: str,
    *,
    sequence: int,
    account: str | None,
    data: str = "",
    line: str = "0",
    receiver: str | None = None,
    extended: ExtendedData | None = None,
    timestamp: datetime | None = None,
    key: bytes | None = None,
    random_bytes: RandomBytes = os.urandom,
    binary_crc: bool = False,
) -> bytes:
    """Build a frame as a panel (or, for replies, a receiver) sends it; encrypted when `key` is given.

    `receiver` and `line` are the hex text to send, so replies can echo what came in.
    """
    header = _header(protocol_id, key is not None, sequence, receiver, line)
    if account is not None:
        header += f"#{account}"
    content = data + "]" + (extended.to_text() if extended else "")
    if timestamp is not None:
        content += "_" + format_timestamp(timestamp)
    if key is None:
        return _wrap(header + "[" + content, binary_crc)
    if timestamp is None:
        raise ValueError("an encrypted DC-09 frame must carry a timestamp")
    return _wrap(header + "[" + encrypt_content(content, key, random_bytes), binary_crc)


def encode_nak_frame(now: datetime, binary_crc: bool = False) -> bytes:
    """The NAK: never encrypted, no echo, and the receiver's time so the panel can correct its clock."""
    return _wrap(f'"NAK"0000R0L0A0[]_{format_timestamp(now)}', binary_crc)
