"""SIA DC-03 event codes and the SIA-DCS data block."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safecity.alarms.taxonomy import PRIORITY_BY_CATEGORY, AlarmCategory, Priority
from safecity.receivers.sia_codes import SIA_CODES, classify_sia
from safecity.receivers.sia_dcs import SiaDataError, SiaEvent, format_sia_data, parse_sia_data

C, P = AlarmCategory, Priority

REQUIRED_CODES = [
    *("BA", "BB", "BC", "BH", "BJ", "BR", "BS", "BT", "BU", "BV", "BX"),
    *("FA", "FB", "FH", "FJ", "FR", "FS", "FT", "FU", "FX", "GA", "GH", "GR", "HA", "HH", "HR"),
    *("KA", "KH", "MA", "MH", "MR", "PA", "PH", "PR", "QA", "QH", "SA", "SH"),
    *("TA", "TR", "TS", "TE", "TX", "UA", "UR", "UX", "WA", "WH", "WR", "ZA", "ZH", "ZR"),
    *("AR", "AT", "YR", "YT", "YM", "YC", "YK", "YS", "YX", "YZ", "LR", "LT", "NT", "NR"),
    *("OP", "CL", "OA", "CA", "OG", "CG", "OR", "OC", "NL", "NF", "RP", "RX", "RY", "RR"),
    *("JA", "XT", "XR", "XQ", "XS", "DD", "DF", "DG", "EA", "ES", "ET"),
]


@pytest.mark.parametrize("code", REQUIRED_CODES)
def test_table_covers_the_common_codes(code: str) -> None:
    assert code in SIA_CODES


def test_every_row_is_two_upper_case_letters_with_a_description() -> None:
    assert len(SIA_CODES) > 250
    for code, row in SIA_CODES.items():
        assert len(code) == 2
        assert code.isalpha()
        assert code.isupper()
        assert row.code == code
        assert row.description
        assert row.category in PRIORITY_BY_CATEGORY


@pytest.mark.parametrize(
    ("code", "category", "priority", "is_restore", "is_alarm"),
    [
        ("BA", C.BURGLARY, P.PROPERTY, False, True),
        ("BR", C.BURGLARY, P.INFO, True, False),
        ("BH", C.BURGLARY, P.INFO, True, False),
        ("BB", C.BYPASS, P.INFO, False, False),
        ("BU", C.BYPASS, P.INFO, True, False),
        ("FA", C.FIRE, P.LIFE_SAFETY, False, True),
        ("FR", C.FIRE, P.INFO, True, False),
        ("FS", C.SUPERVISORY, P.TROUBLE, False, False),
        ("FT", C.TECHNICAL_TROUBLE, P.TROUBLE, False, False),
        ("KA", C.FIRE, P.LIFE_SAFETY, False, True),
        ("PA", C.PANIC, P.LIFE_SAFETY, False, True),
        ("HA", C.HOLDUP, P.LIFE_SAFETY, False, True),
        ("MA", C.MEDICAL, P.LIFE_SAFETY, False, True),
        ("QA", C.MEDICAL, P.LIFE_SAFETY, False, True),
        ("TA", C.TAMPER, P.PROPERTY, False, True),
        ("TR", C.TAMPER, P.INFO, True, False),
        ("TS", C.TEST, P.INFO, False, False),  # test start, not a tamper transition
        ("GA", C.GAS, P.PROPERTY, False, True),
        ("WA", C.WATER, P.PROPERTY, False, True),
        ("ZA", C.ENVIRONMENTAL, P.PROPERTY, False, True),
        ("UA", C.AUXILIARY, P.PROPERTY, False, True),
        ("UX", C.OTHER, P.INFO, False, False),
        ("OP", C.OPEN, P.INFO, False, False),
        ("OA", C.OPEN, P.INFO, False, False),
        ("CL", C.CLOSE, P.INFO, False, False),
        ("CA", C.CLOSE, P.INFO, False, False),
        ("NL", C.CLOSE, P.INFO, False, False),
        ("OC", C.CANCEL, P.INFO, False, False),
        ("RP", C.TEST, P.INFO, False, False),
        ("RX", C.TEST, P.INFO, False, False),
        ("YX", C.TECHNICAL_TROUBLE, P.TROUBLE, False, False),
        ("AT", C.POWER_TROUBLE, P.TROUBLE, False, False),
        ("AR", C.POWER_TROUBLE, P.INFO, True, False),
        ("YT", C.BATTERY_TROUBLE, P.TROUBLE, False, False),
        ("YR", C.BATTERY_TROUBLE, P.INFO, True, False),
        ("YC", C.COMMUNICATION_FAILURE, P.TROUBLE, False, False),
        ("YS", C.COMMUNICATION_FAILURE, P.TROUBLE, False, False),
        ("YK", C.COMMUNICATION_FAILURE, P.INFO, True, False),
        ("LT", C.COMMUNICATION_FAILURE, P.TROUBLE, False, False),
        ("DF", C.BURGLARY, P.PROPERTY, False, True),
    ],
)
def test_codes_map_into_the_taxonomy(
    code: str, category: AlarmCategory, priority: Priority, is_restore: bool, is_alarm: bool
) -> None:
    classification = classify_sia(code)
    assert classification is not None
    assert (classification.category, classification.priority) == (category, priority)
    assert (classification.is_restore, classification.is_alarm) == (is_restore, is_alarm)


def test_lower_case_codes_are_classified_and_unknown_ones_are_not() -> None:
    assert classify_sia("ba") == classify_sia("BA")
    assert classify_sia("ZX") is None
    assert classify_sia("") is None


@pytest.mark.parametrize(
    ("data", "account", "events"),
    [
        ("#1234|Nri1/BA01", "1234", [("BA", "01", "1", None)]),
        ("#1234|Nri1/BA01/BA02", "1234", [("BA", "01", "1", None), ("BA", "02", "1", None)]),
        ("#1234|Nri1/BA01/02", "1234", [("BA", "01", "1", None), ("BA", "02", "1", None)]),
        ("#1234|Nri1BA01ri2BA03", "1234", [("BA", "01", "1", None), ("BA", "03", "2", None)]),
        ("#1234|Nid12/ri3/OP", "1234", [("OP", None, "3", "12")]),
        ("#1234|Nti12:30/id5/CL5", "1234", [("CL", "5", None, "5")]),
        ("Nri1/WA000", None, [("WA", "000", "1", None)]),
        ("|Nri1/CL501", None, [("CL", "501", "1", None)]),
        ("36214|NRP", "36214", [("RP", None, None, None)]),
        ("#0000|Npi0/AT", "0000", [("AT", None, None, None)]),
        ("#5555|Npi1/NL1", "5555", [("NL", "1", None, None)]),
        ("NL1", None, [("NL", "1", None, None)]),  # no "N" flag: the N belongs to the code
        ("#abc|Nri1/BA1", "ABC", [("BA", "1", "1", None)]),
        ("#1234|", "1234", []),
    ],
)
def test_sia_data_is_read_into_events(
    data: str, account: str | None, events: list[tuple[str, str | None, str | None, str | None]]
) -> None:
    report = parse_sia_data(data)
    assert report.account == account
    assert [(e.code, e.zone, e.area, e.user) for e in report.events] == events


def test_zone_names_times_and_text_are_kept() -> None:
    named = parse_sia_data("#123456|Nri1CL0^VX FRONTE ^").events[0]
    assert (named.code, named.zone, named.zone_name) == ("CL", "0", "VX FRONTE ")
    timed = parse_sia_data("#1234|Nti09:15/BA3").events[0]
    assert timed.time == "09:15"
    assert parse_sia_data("#1234|NBA1|Aintruder in the hall").text == "intruder in the hall"
    assert parse_sia_data('#1234|NBA1*"back door"NM').text == "back door"
    assert parse_sia_data("#0000|Npi0/AT").events[0].modifiers == (("pi", "0"),)


def test_old_event_block_is_flagged() -> None:
    assert parse_sia_data("#1234|Nri1/BA1").events[0].new_event
    assert not parse_sia_data("#1234|Ori1/BA1").events[0].new_event


@pytest.mark.parametrize("data", ["#1234|N%%", "#1234|N01/BA", "#1234|Nri1/B", "#1234|Nri1/BA01 "])
def test_unreadable_sia_data_is_rejected(data: str) -> None:
    with pytest.raises(SiaDataError):
        parse_sia_data(data)


events_strategy = st.lists(
    st.builds(
        SiaEvent,
        code=st.sampled_from(sorted(SIA_CODES)),
        zone=st.none() | st.from_regex(r"[0-9]{1,4}", fullmatch=True),
        area=st.none() | st.from_regex(r"[0-9]{1,2}", fullmatch=True),
        user=st.none() | st.from_regex(r"[0-9]{1,3}", fullmatch=True),
    ),
    min_size=1,
    max_size=5,
)


@given(events_strategy, st.none() | st.from_regex(r"[0-9A-F]{3,10}", fullmatch=True))
def test_sia_data_round_trips(events: list[SiaEvent], account: str | None) -> None:
    report = parse_sia_data(format_sia_data(account, events))
    assert report.account == account
    assert [e.code for e in report.events] == [e.code for e in events]
    assert [e.zone for e in report.events] == [e.zone for e in events]
    # Modifiers stay in force until changed, so a later event inherits an earlier area or user.
    area: str | None = None
    user: str | None = None
    for sent, read in zip(events, report.events, strict=True):
        area = sent.area if sent.area is not None else area
        user = sent.user if sent.user is not None else user
        assert (read.area, read.user) == (area, user)


def test_formatted_data_uses_the_modifier_order_panels_send() -> None:
    events = [SiaEvent("BA", "01", area="1", user="5"), SiaEvent("BA", "02", area="1")]
    assert format_sia_data("1234", events) == "#1234|Nid5/ri1/BA01/BA02"
