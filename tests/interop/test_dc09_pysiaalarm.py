"""Interop with pysiaalarm, an independent DC-09 receiver: it reads what we send, we read what it answers.

pysiaalarm uses the ASCII bytes of its key string as the AES key, so its "AAAAAAAAAAAAAAAA" is our
b"AAAAAAAAAAAAAAAA". It checks timestamps against the real clock, so these tests stamp with it too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pysiaalarm.account import SIAAccount
from pysiaalarm.event import NAKEvent, SIAEvent
from pysiaalarm.utils.enums import ResponseType

from safecity.receivers.dc09_codec import (
    Dc09Account,
    Dc09Decoder,
    Dc09Message,
    ExtendedData,
    FrameError,
    FrameFailure,
    FrameResult,
    Reply,
    SiaEvent,
    decide,
    encode_frame,
    format_sia_data,
)

KEY_TEXT = "AAAAAAAAAAAAAAAA"
KEY = KEY_TEXT.encode("ascii")
PLAIN, SECRET = "ABC", "1234"  # one account without encryption, one with
THEIRS = {PLAIN: SIAAccount(PLAIN), SECRET: SIAAccount(SECRET, KEY_TEXT)}
OURS = {PLAIN: Dc09Account(), SECRET: Dc09Account(key=KEY)}
LOCATION = ExtendedData.build(longitude=10.752245, latitude=59.913868)
MAC = ExtendedData.build(mac="0026B9E4268B")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def our_frame(
    protocol_id: str,
    *,
    encrypted: bool,
    receiver: str | None,
    data: str | None = None,
    timestamp: datetime | None = None,
    sequence: int = 42,
) -> bytes:
    account = SECRET if encrypted else PLAIN
    if data is None:
        data = {
            "SIA-DCS": format_sia_data(account, [SiaEvent("BA", "01", area="1", user="5")]),
            "ADM-CID": f"#{account}|1130 01 015",
            "NULL": "",
        }[protocol_id]
    # pysiaalarm reads only one extended block in ADM-CID messages, so those carry just the MAC.
    extended = {"SIA-DCS": LOCATION, "ADM-CID": MAC, "NULL": None}[protocol_id]
    return encode_frame(
        protocol_id,
        sequence=sequence,
        account=account,
        data=data,
        receiver=receiver,
        line="1",
        extended=extended,
        timestamp=timestamp or now(),
        key=KEY if encrypted else None,
    )


def their_event(frame: bytes) -> SIAEvent:
    """What pysiaalarm's server does with a line: strip LF/CR, then parse."""
    return SIAEvent.from_line(frame.decode("ascii").strip(), THEIRS)


def our_result(frame: bytes) -> FrameResult:
    decoder = Dc09Decoder(OURS.get)
    decoder.feed(frame)
    (result,) = decoder.frames()
    return result


CASES = [
    pytest.param(protocol_id, encrypted, receiver, id=f"{protocol_id}-{'enc' if encrypted else 'txt'}-{tag}")
    for protocol_id in ("SIA-DCS", "ADM-CID", "NULL")
    for encrypted in (False, True)
    for receiver, tag in (("12", "with-R"), (None, "no-R"))
]


@pytest.mark.parametrize(("protocol_id", "encrypted", "receiver"), CASES)
def test_pysiaalarm_reads_our_frames(protocol_id: str, encrypted: bool, receiver: str | None) -> None:
    stamp = now()
    event = their_event(our_frame(protocol_id, encrypted=encrypted, receiver=receiver, timestamp=stamp))
    assert event.valid_message  # its CRC agrees with ours
    assert event.response is ResponseType.ACK
    assert event.account == (SECRET if encrypted else PLAIN)
    assert (event.sequence, event.receiver, event.line) == ("0042", receiver and f"R{receiver}", "L1")
    assert event.timestamp == stamp
    if protocol_id == "SIA-DCS":
        assert (event.code, event.ri, event.id, event.message) == ("BA", "1", "5", "01")
        assert event.x_data == "XE010.752245][YN59.913868"
    elif protocol_id == "ADM-CID":
        assert (event.event_qualifier, event.event_type) == ("1", "130")
        assert (event.partition, event.ri) == ("01", "015")
        assert event.code == "BA"  # its own mapping of Contact ID 130
        assert event.x_data == "M0026B9E4268B"
    else:
        assert event.code == "RP"  # it reports a link test as an automatic test


@pytest.mark.parametrize(
    ("protocol_id", "encrypted"),
    [(p, e) for p in ("SIA-DCS", "ADM-CID", "NULL") for e in (False, True)],
)
def test_pysiaalarm_ack_is_a_well_formed_ack_to_us(protocol_id: str, encrypted: bool) -> None:
    frame = our_frame(protocol_id, encrypted=encrypted, receiver="12", sequence=77)
    ack = our_result(their_event(frame).create_response())
    assert isinstance(ack, Dc09Message), ack
    assert (ack.protocol_id, ack.encrypted, ack.sequence) == ("ACK", encrypted, 77)
    assert (ack.receiver, ack.line, ack.account_id) == ("12", "1", SECRET if encrypted else PLAIN)
    assert ack.data == ""
    if encrypted:  # an encrypted ACK carries the receiver's time
        assert ack.timestamp is not None
        assert abs(ack.timestamp - now()) < timedelta(seconds=5)
    assert decide(ack, now=now(), accounts=OURS.get) is Reply.NONE  # a reply is never answered


def test_pysiaalarm_ack_to_a_frame_without_receiver_field_is_malformed() -> None:
    # pysiaalarm 3.2.2 writes the missing receiver as "None" into its reply; a panel cannot parse that.
    response = their_event(our_frame("SIA-DCS", encrypted=False, receiver=None)).create_response()
    assert b"None" in response
    result = our_result(response)
    assert isinstance(result, FrameFailure)
    assert isinstance(result.error, FrameError)


def test_pysiaalarm_nak_is_read_with_its_timestamp() -> None:
    nak = our_result(NAKEvent().create_response())  # it writes "L0R0A0", the receiver after the line
    assert isinstance(nak, Dc09Message), nak
    assert (nak.protocol_id, nak.sequence, nak.account_id) == ("NAK", 0, None)
    assert nak.timestamp is not None
    assert abs(nak.timestamp - now()) < timedelta(seconds=5)


AGREEMENT = [
    pytest.param("SIA-DCS", None, 0, Reply.ACK, ResponseType.ACK, id="good-event"),
    pytest.param("ADM-CID", None, 0, Reply.ACK, ResponseType.ACK, id="good-contact-id"),
    pytest.param("NULL", None, 0, Reply.ACK, ResponseType.ACK, id="link-test"),
    pytest.param("SIA-DCS", "#{account}|Nri1/ZX01", 0, Reply.DUH, ResponseType.DUH, id="unknown-code"),
    pytest.param("SIA-DCS", None, -300, Reply.NAK, ResponseType.NAK, id="stale-timestamp"),
    pytest.param("SIA-DCS", None, 300, Reply.NAK, ResponseType.NAK, id="future-timestamp"),
]


@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize(("protocol_id", "data", "shift", "ours", "theirs"), AGREEMENT)
def test_both_receivers_give_the_same_reply(
    protocol_id: str,
    data: str | None,
    shift: int,
    ours: Reply,
    theirs: ResponseType,
    encrypted: bool,
) -> None:
    account = SECRET if encrypted else PLAIN
    frame = our_frame(
        protocol_id,
        encrypted=encrypted,
        receiver="1",
        data=None if data is None else data.format(account=account),
        timestamp=now() + timedelta(seconds=shift),
    )
    assert their_event(frame).response is theirs
    assert decide(our_result(frame), now=now(), accounts=OURS.get) is ours


def test_both_receivers_ignore_a_corrupted_crc() -> None:
    frame = our_frame("SIA-DCS", encrypted=False, receiver="1")
    corrupted = frame[:1] + (b"0000" if frame[1:5] != b"0000" else b"1111") + frame[5:]
    assert their_event(corrupted).response is None  # pysiaalarm: no response
    assert decide(our_result(corrupted), now=now(), accounts=OURS.get) is Reply.NONE
