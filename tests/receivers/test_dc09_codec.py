"""DC-09 codec: real captured frames, stream feeding, the prescribed replies, fuzzing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from safecity.receivers.contact_id import ContactIdEvent, Qualifier
from safecity.receivers.dc09_codec import (
    KEY_SIZES,
    ContentError,
    CrcError,
    Dc09Account,
    Dc09Decoder,
    Dc09Message,
    DecryptionError,
    ExtendedData,
    FrameFailure,
    FrameResult,
    LengthError,
    Reply,
    SiaEvent,
    TimestampWindow,
    assess,
    crc16,
    decide,
    decrypt_content,
    dedup_key,
    encode_ack,
    encode_duh,
    encode_frame,
    encode_nak,
    encode_reply,
    encrypt_content,
    next_sequence,
    open_message,
    parse_events,
    parse_frame,
)
from safecity.receivers.dc09_crypto import pad_length
from safecity.receivers.dc09_frame import parse_coordinate

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
KEY = b"0123456789abcdef"
ACCOUNTS = {"1234": Dc09Account(), "5678": Dc09Account(key=KEY)}
lookup = ACCOUNTS.get


def zero_pad(count: int) -> bytes:
    return bytes(count)


def sia_frame(
    *,
    sequence: int = 1,
    account: str = "1234",
    data: str | None = None,
    timestamp: datetime | None = NOW,
    key: bytes | None = None,
    receiver: str | None = None,
    line: str = "0",
    extended: ExtendedData | None = None,
    protocol_id: str = "SIA-DCS",
) -> bytes:
    return encode_frame(
        protocol_id,
        sequence=sequence,
        account=account,
        data=f"#{account}|Nri1/BA01" if data is None else data,
        timestamp=timestamp,
        key=key,
        receiver=receiver,
        line=line,
        extended=extended,
        random_bytes=zero_pad,
    )


def wrap(body: str, *, lower: bool = False) -> bytes:
    """A frame around `body` built by hand, for shapes the encoder will not produce."""
    head = f"{crc16(body.encode('latin-1')):04X}{len(body):04X}"
    return b"\n" + (head.lower() if lower else head).encode() + body.encode("latin-1") + b"\r"


def decode(raw: bytes, accounts: dict[str, Dc09Account] = ACCOUNTS) -> list[FrameResult]:
    decoder = Dc09Decoder(accounts.get)
    decoder.feed(raw)
    return decoder.frames()


def only(raw: bytes, accounts: dict[str, Dc09Account] = ACCOUNTS) -> FrameResult:
    results = decode(raw, accounts)
    assert len(results) == 1, results
    return results[0]


def reply_to(raw: bytes, *, now: datetime = NOW, accounts: dict[str, Dc09Account] = ACCOUNTS) -> Reply:
    return decide(only(raw, accounts), now=now, accounts=accounts.get)


def message(raw: bytes, accounts: dict[str, Dc09Account] = ACCOUNTS) -> Dc09Message:
    result = only(raw, accounts)
    assert isinstance(result, Dc09Message), result
    return result


# --- real frames -------------------------------------------------------------------------------------
# Quoted in public issue threads and test suites: the panels that sent them, and where, are named.

REAL_SIA_FRAMES = [
    pytest.param(
        b'\nB40B0039"SIA-DCS"0004L0#AAA[#AAA|Nri0/RP0000]_09:10:30,02-20-2023\r',
        "AAA", [("RP", "0000", "0")], id="ajax-periodic-test (home-assistant/core#88474)",
    ),
    pytest.param(
        b'\nA0FF0038"SIA-DCS"4277L0#AAA[#AAA|Nri2/NP501]_11:38:32,09-26-2021\r',
        "AAA", [("NP", "501", "2")], id="ajax-arming-event (eavanvalkenburg/sia#51)",
    ),
    pytest.param(
        b'\nDF9A0038"SIA-DCS"4278L0#AAA[#AAA|Nri1/CG501]_11:38:32,09-26-2021\r',
        "AAA", [("CG", "501", "1")], id="ajax-close-area (eavanvalkenburg/sia#51)",
    ),
    pytest.param(
        b'\nCEF0003F"SIA-DCS"0001L#7303658550[#7303658550|NBA4]_11:52:09,05-07-2019\r',
        "7303658550", [("BA", "4", None)], id="bare-L-burglary (schmupu/ioBroker.sia#11)",
    ),
    pytest.param(
        b'\nD8910037"SIA-DCS"0097L0#ABCD[#0000|Npi0/AT]_11:26:04,03-01-2026\r',
        "ABCD", [("AT", None, None)], id="satel-ethm1-ac-trouble (eavanvalkenburg/pysiaalarm#87)",
    ),
    pytest.param(
        b'\nB4330036"SIA-DCS"0442L000#36214[36214|NRP]_00:00:00,02-21-2024\r',
        "36214", [("RP", None, None)], id="prosec-periodic-test",
    ),
    pytest.param(
        b'\n3F60003C"SIA-DCS"0001L0#51449[#51449|Nri0000/LR]_21:26:19,12-20-2023\r',
        "51449", [("LR", None, "0000")], id="prosec-phone-line-restoral",
    ),
    pytest.param(
        b'\n7B620035"SIA-DCS"0005L000#3044[3044|NOP1]_00:03:31,12-21-2023\r',
        "3044", [("OP", "1", None)], id="prosec-opening",
    ),
    pytest.param(
        b'\n85340035"SIA-DCS"0004L000#3044[3044|NBC1]_00:03:31,12-21-2023\r',
        "3044", [("BC", "1", None)], id="prosec-burglary-cancel",
    ),
]

REAL_CID_FRAMES = [
    pytest.param(
        b'\n77880027"ADM-CID"0068R0L0#AAA[#AAA|3401 01 070]\r',
        "AAA", ("3", "401", "01", "070"), id="closing-by-user-70 (home-assistant/core#131728)",
    ),
    pytest.param(
        b'\n99820040"ADM-CID"1937R15L1#21401[#21401|1602 00 000]_20:59:59,02-20-2024\r',
        "21401", ("1", "602", "00", "000"), id="hikvision-periodic-test",
    ),
    pytest.param(
        b'\nF68B003B"ADM-CID"0028L0#9757[#9757|1602 00 000]_20:59:45,02-20-2024\r',
        "9757", ("1", "602", "00", "000"), id="prosec-periodic-test",
    ),
    pytest.param(
        b'\nF92F0043"ADM-CID"0020R7896L7896#3456[#3456|1407 00 001]_17:01:14,07-26-2024\r',
        "3456", ("1", "407", "00", "001"), id="remote-disarm-with-receiver-and-line",
    ),
    pytest.param(
        b'\n\xc1\x7e003E"ADM-CID"0379R0L0#10064[10064|1602 00 000]_00:00:43,02-21-2024\r',
        "10064", ("1", "602", "00", "000"), id="opax-binary-crc",
    ),
    pytest.param(
        b'\n\x30\x6e003D"ADM-CID"0002R1L1#9413[#9413|1602 99 999]_23:05:30,08-30-2023\r',
        "9413", ("1", "602", "99", "999"), id="trikdis-e16-binary-crc (eavanvalkenburg/pysiaalarm#52)",
    ),
]

REAL_LINK_TESTS = [
    pytest.param(b'\nEA740027"NULL"0000L0#1409[]_20:38:07,08-27-2026\r', "1409", id="pyronix-enforcer"),
    pytest.param(b'\n22900027"NULL"0000L0#1409[]_21:00:06,08-27-2026\r', "1409", id="pyronix-enforcer-2"),
    pytest.param(b'\nD3440015"NULL"0000L0#008312[]\r', "008312", id="sigma-s-pro-untimed"),
    pytest.param(b'\nD730002F"NULL"0000R7896L7896#3456[]_17:01:26,07-26-2024\r', "3456", id="with-receiver"),
    pytest.param(b'\nB0970029"NULL"0000L000#0809[]_21:00:01,02-20-2024\r', "0809", id="prosec"),
    pytest.param(b'\n\xc5\x5b002A"NULL"0000R8L0#41213[]_21:00:10,02-20-2024\r', "41213", id="opax-binary"),
    pytest.param(b'\n\xd1\x4b0029"NULL"0000R1L1#9413[]_23:05:28,08-30-2023\r', "9413", id="trikdis-binary"),
]

# From pysiaalarm's test cases, encrypted with the key "AAAAAAAAAAAAAAAA".
PYSIAALARM_ENCRYPTED_NULL = (
    b'\n76D80055"*NULL"0000R0L0#AAAB[B4BC8B40D0E6D959D6BEA78E88CC0B2155741A3C44FBB96D476A3E557CAD64D9\r'
)
# An Ajax hub's encrypted event (home-assistant/core#127538); its key was never published.
AJAX_ENCRYPTED = (
    b'\n339C0075"*SIA-DCS"0016L0#AAA[A35682013F7FBD6096EADC2D129828751746607BEB44EA21688FEC6F0D05D963'
    b"86F22D2747AA05500B9D2254D309D04A\r"
)


def frame_of(case: Any) -> bytes:
    raw = case.values[0]
    assert isinstance(raw, bytes)
    return raw


def known(*account_ids: str) -> dict[str, Dc09Account]:
    return {account_id: Dc09Account() for account_id in account_ids}


@pytest.mark.parametrize(("raw", "account", "events"), REAL_SIA_FRAMES)
def test_real_sia_frames_decode_to_account_code_and_zone(
    raw: bytes, account: str, events: list[tuple[str, str | None, str | None]]
) -> None:
    msg = message(raw, known(account))
    assert msg.protocol_id == "SIA-DCS"
    assert msg.account_id == account
    decoded = parse_events(msg)
    assert [(e.code, e.zone, e.area) for e in decoded if isinstance(e, SiaEvent)] == events
    assert decide(msg, now=msg.timestamp or NOW, accounts=known(account).get) is Reply.ACK


@pytest.mark.parametrize(("raw", "account", "fields"), REAL_CID_FRAMES)
def test_real_contact_id_frames_decode_to_qualifier_code_partition_and_zone(
    raw: bytes, account: str, fields: tuple[str, str, str, str]
) -> None:
    msg = message(raw, known(account))
    assert msg.protocol_id == "ADM-CID"
    assert msg.account_id == account
    (event,) = parse_events(msg)
    assert isinstance(event, ContactIdEvent)
    assert (str(int(event.qualifier)), event.code, event.partition, event.zone) == fields
    assert decide(msg, now=msg.timestamp or NOW, accounts=known(account).get) is Reply.ACK


@pytest.mark.parametrize(("raw", "account"), REAL_LINK_TESTS)
def test_real_link_tests_are_acknowledged(raw: bytes, account: str) -> None:
    msg = message(raw, known(account))
    assert (msg.protocol_id, msg.account_id, parse_events(msg)) == ("NULL", account, ())
    assert decide(msg, now=msg.timestamp or NOW, accounts=known(account).get) is Reply.ACK


@pytest.mark.parametrize(
    "raw", [frame_of(p) for p in REAL_SIA_FRAMES + REAL_CID_FRAMES + REAL_LINK_TESTS] + [AJAX_ENCRYPTED]
)
def test_real_frames_pass_crc_and_length(raw: bytes) -> None:
    parse_frame(raw)  # raises on a CRC or length mismatch


def test_real_frame_fields_are_kept_as_sent() -> None:
    msg = message(frame_of(REAL_CID_FRAMES[3]), known("3456"))
    assert (msg.sequence, msg.receiver, msg.line, msg.account) == (20, "7896", "7896", "3456")
    assert msg.timestamp == datetime(2024, 7, 26, 17, 1, 14, tzinfo=UTC)
    bare = message(frame_of(REAL_SIA_FRAMES[3]), known("7303658550"))
    assert (bare.receiver, bare.line) == (None, "")


def test_binary_crc_frames_are_flagged_so_replies_match() -> None:
    msg = message(frame_of(REAL_LINK_TESTS[5]), known("41213"))
    assert msg.binary_crc
    ack = encode_ack(msg, now=NOW)
    assert ack[1:3] == crc16(ack[7:-1]).to_bytes(2, "big")
    assert message(ack).protocol_id == "ACK"


def test_pysiaalarm_encrypted_link_test_decrypts_with_its_published_key() -> None:
    accounts = {"AAAB": Dc09Account(key=b"AAAAAAAAAAAAAAAA")}
    msg = message(PYSIAALARM_ENCRYPTED_NULL, accounts)
    assert (msg.protocol_id, msg.encrypted, msg.account_id, msg.data) == ("NULL", True, "AAAB", "")
    assert msg.timestamp == datetime(2020, 7, 5, 18, 24, 52, tzinfo=UTC)
    assert decide(msg, now=msg.timestamp, accounts=accounts.get) is Reply.ACK


def test_encrypted_frame_without_a_key_is_answered_duh() -> None:
    assert reply_to(AJAX_ENCRYPTED, accounts=known("AAA")) is Reply.DUH


def test_encrypted_frame_with_the_wrong_key_is_answered_duh() -> None:
    accounts = {"AAA": Dc09Account(key=b"AAAAAAAAAAAAAAAA")}
    result = only(AJAX_ENCRYPTED, accounts)
    assert isinstance(result, FrameFailure)
    assert isinstance(result.error, DecryptionError)
    assert decide(result, now=NOW, accounts=accounts.get) is Reply.DUH


def test_real_replies_are_read_and_never_answered() -> None:
    ack = message(b'\n59890012"ACK"0000L0#1409[]\r')  # NiftyDC09 (home-assistant/core#180511)
    nak = message(b'\nAC4E0025"NAK"0000R0L0A0[]_11:52:07,05-07-2019\r')  # ioBroker.sia#11
    assert (ack.protocol_id, ack.account_id, ack.data) == ("ACK", "1409", "")
    assert (nak.protocol_id, nak.timestamp) == ("NAK", datetime(2019, 5, 7, 11, 52, 7, tzinfo=UTC))
    for reply_frame in (ack, nak):
        assert decide(reply_frame, now=NOW, accounts=lookup) is Reply.NONE


def test_pysiaalarm_test_frame_with_a_wrong_length_field_gets_no_reply() -> None:
    # pysiaalarm's own test case: the CRC is right but the length field says 0x78 for 0x34 bytes.
    raw = b'\nE5D50078"SIA-DCS"6002L0#AAA[|Nri1/CL501]_14:12:04,09-25-2019\r'
    result = only(raw, known("AAA"))
    assert isinstance(result, FrameFailure)
    assert isinstance(result.error, LengthError)
    assert decide(result, now=NOW, accounts=known("AAA").get) is Reply.NONE


# --- frame layer ---------------------------------------------------------------------------------------


def test_crc16_is_crc16_arc() -> None:
    assert crc16(b"123456789") == 0xBB3D  # the catalogued check value of CRC-16/ARC


def test_lower_case_hex_is_accepted_in_every_hex_field() -> None:
    raw = wrap('"SIA-DCS"0007R1aL0f#12ab[#12AB|Nri1/BA01]_12:00:00,03-01-2026', lower=True)
    msg = message(raw, known("12AB"))
    assert (msg.receiver, msg.line, msg.account, msg.account_id) == ("1a", "0f", "12ab", "12AB")
    assert reply_to(raw, accounts=known("12AB")) is Reply.ACK
    assert b'"ACK"0007R1aL0f#12ab[]' in encode_ack(msg, now=NOW)


def test_receiver_field_may_be_present_or_absent() -> None:
    with_receiver = message(sia_frame(receiver="12AB"))
    without = message(sia_frame())
    assert (with_receiver.receiver, without.receiver) == ("12AB", None)


def test_extended_blocks_are_read_into_typed_fields() -> None:
    extended = ExtendedData.build(
        longitude=-3.703790,
        latitude=40.416775,
        panel_time=NOW - timedelta(seconds=5),
        mac="0026B9E4268B",
        verification="https://example.org/clip/1",
    )
    msg = message(sia_frame(extended=extended))
    assert msg.extended.longitude == pytest.approx(-3.703790)
    assert msg.extended.latitude == pytest.approx(40.416775)
    assert msg.extended.panel_time == NOW - timedelta(seconds=5)
    assert (msg.extended.mac, msg.extended.verification) == ("0026B9E4268B", "https://example.org/clip/1")
    assert [identifier for identifier, _ in msg.extended.blocks] == ["X", "Y", "H", "M", "V"]
    assert msg.timestamp == NOW


@pytest.mark.parametrize(
    ("text", "positive", "negative", "expected"),
    [
        ("E030.123456", "E", "W", 30.123456),
        ("W030.5", "E", "W", -30.5),
        ("030.5W", "E", "W", -30.5),
        ("-12.25", "E", "W", -12.25),
        ("030E1234", "E", "W", 30.1234),
        ("N59.9", "N", "S", 59.9),
        ("S33.9", "N", "S", -33.9),
        ("E12", "N", "S", None),  # a longitude hemisphere in a latitude block
        ("N95", "N", "S", None),  # beyond the pole
        ("somewhere", "E", "W", None),
    ],
)
def test_coordinates_are_read_in_the_forms_panels_send(
    text: str, positive: str, negative: str, expected: float | None
) -> None:
    value = parse_coordinate(text, positive, negative)
    assert value == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("key_size", [16, 24, 32])
@pytest.mark.parametrize(
    ("protocol_id", "data"),
    [("SIA-DCS", "#5678|Nri1/BA01"), ("ADM-CID", "#5678|1130 01 015"), ("NULL", "")],
)
def test_encrypted_frames_round_trip_with_every_key_size(protocol_id: str, data: str, key_size: int) -> None:
    key = bytes(range(key_size))
    accounts = {"5678": Dc09Account(key=key)}
    extended = ExtendedData.build(longitude=10.75, latitude=59.91)
    raw = sia_frame(protocol_id=protocol_id, account="5678", data=data, key=key, extended=extended)
    assert raw.startswith(b"\n")
    assert f'"*{protocol_id}"'.encode() in raw
    assert data.encode() not in raw or not data
    msg = message(raw, accounts)
    assert (msg.encrypted, msg.data, msg.timestamp) == (True, data, NOW)
    assert msg.extended.latitude == pytest.approx(59.91)
    assert decide(msg, now=NOW, accounts=accounts.get) is Reply.ACK


def test_unencrypted_frame_needs_no_key_and_encrypted_one_stays_closed_without() -> None:
    closed = message(sia_frame(account="5678", key=KEY), known("5678"))
    assert (closed.encrypted, closed.is_open) == (True, False)
    with pytest.raises(DecryptionError):
        open_message(closed)
    assert open_message(closed, KEY).data == "#5678|Nri1/BA01"


printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@given(st.text(printable, max_size=200), st.sampled_from(KEY_SIZES))
@settings(max_examples=150, deadline=None)
def test_content_survives_encryption(text: str, key_size: int) -> None:
    assume("]" not in text)
    key = bytes(range(1, key_size + 1))
    content = text + "]_12:00:00,03-01-2026"
    ciphertext = encrypt_content(content, key)
    assert len(ciphertext) % 32 == 0
    assert decrypt_content(ciphertext, key) == content


@given(st.integers(min_value=0, max_value=500))
def test_pad_fills_whole_blocks_with_at_least_one_character(length: int) -> None:
    pad = pad_length(length)
    assert 1 <= pad <= 16
    assert (pad + 1 + length) % 16 == 0


# --- replies -------------------------------------------------------------------------------------------


def test_intact_event_from_a_known_account_earns_ack() -> None:
    assert reply_to(sia_frame()) is Reply.ACK
    assert reply_to(sia_frame(protocol_id="ADM-CID", data="#1234|1130 01 015")) is Reply.ACK
    assert reply_to(sia_frame(protocol_id="NULL", data="")) is Reply.ACK


def test_untimed_plain_event_is_accepted() -> None:
    assert reply_to(sia_frame(timestamp=None)) is Reply.ACK


def test_corrupted_crc_earns_no_reply() -> None:
    raw = bytearray(sia_frame())
    raw[1:5] = b"0000" if raw[1:5] != b"0000" else b"FFFF"
    result = only(bytes(raw))
    assert isinstance(result, FrameFailure)
    assert isinstance(result.error, CrcError)
    assert decide(result, now=NOW, accounts=lookup) is Reply.NONE


def test_unknown_account_earns_duh() -> None:
    assert reply_to(sia_frame(account="9999")) is Reply.DUH


def test_unknown_id_token_earns_duh() -> None:
    assert reply_to(sia_frame(protocol_id="SIA-DCX")) is Reply.DUH


def test_unknown_sia_event_code_earns_duh() -> None:
    assert reply_to(sia_frame(data="#1234|Nri1/ZX01")) is Reply.DUH


def test_unknown_contact_id_event_code_earns_duh() -> None:
    assert reply_to(sia_frame(protocol_id="ADM-CID", data="#1234|1999 01 015")) is Reply.DUH


@pytest.mark.parametrize("data", ["#1234|N%%", "#1234|", "#1234|N01/BA"])
def test_unreadable_sia_data_earns_duh(data: str) -> None:
    assert reply_to(sia_frame(data=data)) is Reply.DUH


def test_unreadable_contact_id_block_earns_duh() -> None:
    assert reply_to(sia_frame(protocol_id="ADM-CID", data="#1234|2130 01 015")) is Reply.DUH


def test_content_that_is_not_dc09_earns_duh() -> None:
    result = only(wrap('"SIA-DCS"0001L0#1234[#1234|Nri1/BA01'))  # the data block is never closed
    assert isinstance(result, FrameFailure)
    assert isinstance(result.error, ContentError)
    assert decide(result, now=NOW, accounts=lookup) is Reply.DUH


def test_encrypted_event_for_an_account_without_key_earns_duh() -> None:
    assert reply_to(sia_frame(account="1234", key=KEY)) is Reply.DUH


def test_plain_event_for_an_account_with_a_key_earns_duh_unless_allowed() -> None:
    raw = sia_frame(account="5678")
    assert reply_to(raw) is Reply.DUH
    lenient = {"5678": Dc09Account(key=KEY, allow_plaintext=True)}
    assert reply_to(raw, accounts=lenient) is Reply.ACK


def test_encrypted_event_without_timestamp_earns_nak() -> None:
    ciphertext = encrypt_content("#5678|Nri1/BA01]", KEY, zero_pad)
    assert reply_to(wrap(f'"*SIA-DCS"0001L0#5678[{ciphertext}')) is Reply.NAK


def test_unreadable_timestamp_earns_nak() -> None:
    raw = wrap('"SIA-DCS"0001L0#1234[#1234|Nri1/BA01]_25:61:00,13-45-2026')
    assert message(raw).timestamp_text == "25:61:00,13-45-2026"
    assert reply_to(raw) is Reply.NAK


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(20, Reply.ACK), (21, Reply.NAK), (-40, Reply.ACK), (-41, Reply.NAK), (0, Reply.ACK)],
)
@pytest.mark.parametrize("key", [None, KEY])
def test_timestamp_window_edges(offset: int, expected: Reply, key: bytes | None) -> None:
    account = "5678" if key else "1234"
    raw = sia_frame(account=account, key=key, timestamp=NOW + timedelta(seconds=offset))
    assert reply_to(raw) is expected


def test_clock_offset_moves_the_window_for_that_account_only() -> None:
    raw = sia_frame(timestamp=NOW + timedelta(minutes=10))
    assert reply_to(raw) is Reply.NAK
    skewed = {"1234": Dc09Account(clock_offset=timedelta(minutes=10))}
    assert reply_to(raw, accounts=skewed) is Reply.ACK
    assert reply_to(sia_frame(timestamp=NOW), accounts=skewed) is Reply.NAK


def test_window_is_configurable() -> None:
    raw = sia_frame(timestamp=NOW + timedelta(seconds=30))
    result = only(raw)
    assert decide(result, now=NOW, accounts=lookup) is Reply.NAK
    wide = TimestampWindow(ahead=timedelta(seconds=60), behind=timedelta(seconds=60))
    assert decide(result, now=NOW, accounts=lookup, window=wide) is Reply.ACK


def test_timestamp_is_judged_before_content() -> None:
    raw = sia_frame(data="#1234|Nri1/ZX01", timestamp=NOW - timedelta(hours=1))
    assert reply_to(raw) is Reply.NAK


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(only(sia_frame()), now=NOW.replace(tzinfo=None), accounts=lookup)


def test_assess_gives_a_reason_for_the_log() -> None:
    decision = assess(only(sia_frame(account="9999")), now=NOW, accounts=lookup)
    assert decision.reply is Reply.DUH
    assert "9999" in decision.reason


def test_ack_echoes_sequence_receiver_line_and_account() -> None:
    msg = message(sia_frame(sequence=42, receiver="12AB", line="3"))
    ack = encode_ack(msg, now=NOW)
    assert ack == wrap('"ACK"0042R12ABL3#1234[]')
    assert encode_ack(message(sia_frame(sequence=7)), now=NOW) == wrap('"ACK"0007L0#1234[]')


def test_encrypted_event_gets_an_encrypted_ack_with_the_receiver_time() -> None:
    msg = message(sia_frame(account="5678", key=KEY, sequence=9, receiver="1"))
    ack = encode_reply(Reply.ACK, msg, now=NOW, key=KEY)
    assert ack.startswith(b"\n")
    assert b'"*ACK"0009R1L0#5678[' in ack
    opened = message(ack)
    assert (opened.protocol_id, opened.encrypted, opened.data, opened.timestamp) == ("ACK", True, "", NOW)
    with pytest.raises(DecryptionError):
        encode_ack(msg, now=NOW)


def test_nak_carries_the_receiver_time_and_is_never_encrypted() -> None:
    nak = encode_nak(NOW)
    assert nak == wrap('"NAK"0000R0L0A0[]_12:00:00,03-01-2026')
    stale = sia_frame(account="5678", key=KEY, timestamp=NOW - timedelta(hours=2))
    assert encode_reply(reply_to(stale), only(stale), now=NOW, key=KEY) == nak


def test_duh_echoes_the_header_and_is_never_encrypted() -> None:
    msg = message(sia_frame(account="1234", key=KEY, sequence=3, receiver="9"))
    assert encode_duh(msg) == wrap('"DUH"0003R9L0#1234[]')
    assert encode_reply(Reply.DUH, msg, now=NOW) == encode_duh(msg)


def test_nothing_is_sent_for_a_broken_frame() -> None:
    broken = only(wrap('"SIA-DCS"0001L0#1234[#1234|Nri1/BA01]')[:-5] + b"\r")
    assert encode_reply(decide(broken, now=NOW, accounts=lookup), broken, now=NOW) == b""


# --- sequence and dedup --------------------------------------------------------------------------------


@pytest.mark.parametrize(("sequence", "following"), [(0, 1), (1, 2), (9998, 9999), (9999, 1)])
def test_sequence_wraps_from_9999_to_0001(sequence: int, following: int) -> None:
    assert next_sequence(sequence) == following


def test_retransmission_maps_to_the_same_dedup_key() -> None:
    first = message(sia_frame(account="5678", key=KEY, sequence=12))
    resent = message(
        encode_frame(
            "SIA-DCS", sequence=12, account="5678", data="#5678|Nri1/BA01",
            timestamp=NOW + timedelta(seconds=30), key=KEY, random_bytes=lambda n: b"\xff" * n,
        )
    )  # fmt: skip
    assert first.body != resent.body
    assert dedup_key(first) == dedup_key(resent)


def test_wrapped_sequence_with_other_content_gets_another_dedup_key() -> None:
    first = message(sia_frame(sequence=12))
    later = message(sia_frame(sequence=12, data="#1234|Nri1/BR01"))
    assert dedup_key(first) != dedup_key(later)
    assert dedup_key(first) != dedup_key(message(sia_frame(sequence=13)))
    with pytest.raises(ContentError):
        dedup_key(message(sia_frame(account="5678", key=KEY), known("5678")))


# --- the stream ----------------------------------------------------------------------------------------

VALID_FRAMES = [
    sia_frame(sequence=1),
    sia_frame(sequence=2, protocol_id="ADM-CID", data="#1234|1130 01 015", receiver="5"),
    sia_frame(sequence=3, account="5678", key=KEY),
    sia_frame(protocol_id="NULL", data="", sequence=0),
    frame_of(REAL_CID_FRAMES[4]),  # binary CRC
    sia_frame(sequence=4, extended=ExtendedData.build(longitude=18.07, latitude=59.33)),
]
STREAM_ACCOUNTS = ACCOUNTS | known("10064")


def summary(results: list[FrameResult]) -> list[tuple[str, bytes]]:
    return [
        (type(r).__name__, r.raw if isinstance(r, FrameFailure) else r.raw + repr(r.data).encode())
        for r in results
    ]


@given(st.lists(st.sampled_from(VALID_FRAMES), min_size=1, max_size=6), st.data())
@settings(deadline=None)
def test_stream_fed_whole_byte_by_byte_or_in_chunks_gives_the_same_results(
    frames: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frames)
    whole = Dc09Decoder(STREAM_ACCOUNTS.get)
    whole.feed(stream)
    expected = whole.frames()
    assert [r.raw for r in expected] == frames
    assert all(isinstance(r, Dc09Message) and r.is_open for r in expected)

    bytewise = Dc09Decoder(STREAM_ACCOUNTS.get)
    results: list[FrameResult] = []
    for byte in stream:
        bytewise.feed(bytes([byte]))
        results.extend(bytewise.frames())
    assert summary(results) == summary(expected)

    cuts = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=len(stream) - 1), max_size=8)))
    chunked = Dc09Decoder(STREAM_ACCOUNTS.get)
    results = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        chunked.feed(stream[start:end])
        results.extend(chunked.frames())
    assert summary(results) == summary(expected)


# Garbage between frames: anything but CR (which would close a bogus frame and earn a failure result)
# and '"' (which could fake a binary-CRC header).
garbage = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b'"', b""))


@given(st.lists(st.tuples(garbage, st.sampled_from(VALID_FRAMES)), min_size=1, max_size=5), garbage)
@settings(deadline=None)
def test_garbage_between_frames_is_skipped(pieces: list[tuple[bytes, bytes]], tail: bytes) -> None:
    stream = b"".join(junk + frame for junk, frame in pieces) + tail
    decoder = Dc09Decoder(STREAM_ACCOUNTS.get)
    decoder.feed(stream)
    results = decoder.frames()
    assert [r.raw for r in results] == [frame for _, frame in pieces]
    assert all(isinstance(r, Dc09Message) for r in results)


def test_truncated_frame_is_dropped_when_the_next_one_starts() -> None:
    good = sia_frame(sequence=5)
    results = decode(good[:-12] + good)
    assert [r.raw for r in results] == [good]


def test_overlong_garbage_is_reported_once_and_decoding_continues() -> None:
    good = sia_frame(sequence=6)
    results = decode(b"\n" + b"x" * 5000 + good)
    assert isinstance(results[0], FrameFailure)
    assert results[0].reply is Reply.NONE
    assert [r.raw for r in results[1:]] == [good]


# --- fuzzing -------------------------------------------------------------------------------------------


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_raise_and_get_a_reply_kind(data: bytes) -> None:
    for framed in (data, b"\n" + data + b"\r"):
        decoder = Dc09Decoder(lookup)
        decoder.feed(framed)
        for result in decoder.frames():
            reply = decide(result, now=NOW, accounts=lookup)
            assert reply in set(Reply)
            encode_reply(reply, result, now=NOW, key=KEY)


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_random_content_in_a_valid_envelope_never_raises(content: bytes) -> None:
    for account, key in (("1234", None), ("5678", KEY)):
        body = f'"{"*" if key else ""}SIA-DCS"0001L0#{account}['.encode() + content
        raw = b"\n" + f"{crc16(body):04X}{len(body):04X}".encode() + body + b"\r"
        decoder = Dc09Decoder(lookup)
        decoder.feed(raw)
        for result in decoder.frames():
            assert decide(result, now=NOW, accounts=lookup) in set(Reply)


MUTATION_SOURCES = [sia_frame(sequence=8), sia_frame(sequence=9, account="5678", key=KEY)]


def case_swapped(old: int, new: int) -> bool:
    return chr(old).lower() == chr(new).lower() and chr(old) in "abcdefABCDEF"


@given(st.sampled_from(MUTATION_SOURCES), st.data())
@settings(max_examples=300, deadline=None)
def test_any_single_byte_corruption_earns_no_reply(raw: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(min_value=1, max_value=len(raw) - 2))
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != raw[position]))
    mutated = raw[:position] + bytes([new]) + raw[position + 1 :]
    results = decode(mutated)
    replies = [decide(r, now=NOW, accounts=lookup) for r in results]
    if position <= 8 and case_swapped(raw[position], new):
        assert replies == [Reply.ACK]  # the same hex value in the other case
    else:
        assert all(reply is Reply.NONE for reply in replies)


@given(st.integers(min_value=-600, max_value=600), st.booleans())
@settings(max_examples=100, deadline=None)
def test_shifted_timestamp_is_nakked_exactly_outside_the_window(seconds: int, encrypted: bool) -> None:
    account, key = ("5678", KEY) if encrypted else ("1234", None)
    raw = sia_frame(account=account, key=key, timestamp=NOW + timedelta(seconds=seconds))
    assert reply_to(raw) is (Reply.ACK if -40 <= seconds <= 20 else Reply.NAK)


@given(st.from_regex(r"[0-9A-F]{3,16}", fullmatch=True), st.booleans())
@settings(max_examples=100, deadline=None)
def test_unknown_account_is_always_answered_duh(account: str, encrypted: bool) -> None:
    assume(account not in ACCOUNTS)
    raw = sia_frame(account=account, key=KEY if encrypted else None)
    assert reply_to(raw) is Reply.DUH


def test_contact_id_events_come_out_typed() -> None:
    msg = message(sia_frame(protocol_id="ADM-CID", data="#1234|3401 02 007"))
    assert parse_events(msg) == (ContactIdEvent(Qualifier.RESTORE, "401", "02", "007"),)
