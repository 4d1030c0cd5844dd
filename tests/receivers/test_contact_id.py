"""Contact ID (SIA DC-05): the event table, the event block, and how codes map into the taxonomy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safecity.alarms.taxonomy import (
    ALARM_CATEGORIES,
    PRIORITY_BY_CATEGORY,
    AlarmCategory,
    Priority,
    classify,
)
from safecity.receivers.contact_id import (
    CONTACT_ID_CODES,
    ContactIdError,
    ContactIdEvent,
    Qualifier,
    classify_contact_id,
    contact_id_checksum,
    format_contact_id,
    parse_contact_id,
    parse_dc05_block,
)

C, P = AlarmCategory, Priority

# One or more codes from every DC-05 group, so a lost row shows up by name.
REQUIRED_CODES = (
    [str(n) for n in range(100, 103)]
    + [str(n) for n in range(110, 119)]
    + [str(n) for n in range(120, 127)]
    + [str(n) for n in range(130, 140)]
    + [str(n) for n in range(140, 148)]
    + [str(n) for n in range(150, 160)]
    + ["161", "162", "163"]
    + [str(n) for n in range(200, 207)]
    + [str(n) for n in range(300, 315)]
    + [str(n) for n in range(320, 326)]
    + [str(n) for n in range(330, 340)] + ["341", "342", "343", "344"]
    + [str(n) for n in range(350, 358)]
    + [str(n) for n in range(370, 379)]
    + [str(n) for n in range(380, 390)] + ["391", "392", "393"]
    + [str(n) for n in range(400, 410)]
    + [str(n) for n in range(411, 417)]
    + [str(n) for n in range(421, 435)]
    + ["441", "442"] + [str(n) for n in range(450, 460)] + [str(n) for n in range(461, 467)]
    + ["501", "520", "521", "522", "551", "552", "553"] + [str(n) for n in range(570, 578)]
    + [str(n) for n in range(601, 610)] + [str(n) for n in range(611, 617)]
    + [str(n) for n in range(621, 633)]
    + ["641", "642", "654", "750", "789", "796", "798"]
    + ["900", "901", "910", "911", "912", "921", "922", "926", "929"]
)  # fmt: skip


@pytest.mark.parametrize("code", REQUIRED_CODES)
def test_table_covers_the_dc05_groups(code: str) -> None:
    assert code in CONTACT_ID_CODES


def test_every_row_is_a_three_digit_code_with_a_description() -> None:
    for code, row in CONTACT_ID_CODES.items():
        assert len(code) == 3
        assert code.isdigit()
        assert row.code == code
        assert row.description
        assert row.category in PRIORITY_BY_CATEGORY


@pytest.mark.parametrize(
    ("qualifier", "code", "category", "priority", "is_restore", "is_alarm"),
    [
        (1, "100", C.MEDICAL, P.LIFE_SAFETY, False, True),
        (1, "101", C.MEDICAL, P.LIFE_SAFETY, False, True),
        (1, "110", C.FIRE, P.LIFE_SAFETY, False, True),
        (1, "111", C.FIRE, P.LIFE_SAFETY, False, True),
        (1, "120", C.PANIC, P.LIFE_SAFETY, False, True),
        (1, "121", C.DURESS, P.LIFE_SAFETY, False, True),
        (1, "122", C.HOLDUP, P.LIFE_SAFETY, False, True),
        (1, "123", C.PANIC, P.LIFE_SAFETY, False, True),
        (1, "130", C.BURGLARY, P.PROPERTY, False, True),
        (1, "134", C.BURGLARY, P.PROPERTY, False, True),
        (1, "137", C.TAMPER, P.PROPERTY, False, True),
        (1, "144", C.TAMPER, P.PROPERTY, False, True),
        (1, "151", C.GAS, P.PROPERTY, False, True),
        (1, "154", C.WATER, P.PROPERTY, False, True),
        (1, "158", C.ENVIRONMENTAL, P.PROPERTY, False, True),
        (1, "162", C.GAS, P.PROPERTY, False, True),
        (1, "200", C.SUPERVISORY, P.TROUBLE, False, False),
        (1, "301", C.POWER_TROUBLE, P.TROUBLE, False, False),
        (1, "302", C.BATTERY_TROUBLE, P.TROUBLE, False, False),
        (1, "350", C.COMMUNICATION_FAILURE, P.TROUBLE, False, False),
        (1, "354", C.COMMUNICATION_FAILURE, P.TROUBLE, False, False),
        (1, "381", C.TECHNICAL_TROUBLE, P.TROUBLE, False, False),
        (1, "383", C.TAMPER, P.PROPERTY, False, True),
        (1, "384", C.BATTERY_TROUBLE, P.TROUBLE, False, False),
        (1, "401", C.OPEN, P.INFO, False, False),
        (3, "401", C.CLOSE, P.INFO, False, False),
        (1, "403", C.OPEN, P.INFO, False, False),
        (3, "441", C.CLOSE, P.INFO, False, False),
        (1, "406", C.CANCEL, P.INFO, False, False),
        (1, "412", C.ACCESS, P.INFO, False, False),
        (1, "570", C.BYPASS, P.INFO, False, False),
        (3, "570", C.BYPASS, P.INFO, True, False),
        (1, "601", C.TEST, P.INFO, False, False),
        (1, "602", C.TEST, P.INFO, False, False),
        (1, "607", C.TEST, P.INFO, False, False),
        (3, "130", C.BURGLARY, P.INFO, True, False),  # a restore never outranks a live alarm
        (6, "130", C.BURGLARY, P.PROPERTY, False, False),  # still present, reported before
    ],
)
def test_codes_map_into_the_taxonomy(
    qualifier: int, code: str, category: AlarmCategory, priority: Priority, is_restore: bool, is_alarm: bool
) -> None:
    classification = classify_contact_id(qualifier, code)
    assert classification is not None
    assert (classification.category, classification.priority) == (category, priority)
    assert (classification.is_restore, classification.is_alarm) == (is_restore, is_alarm)
    assert classification.description == CONTACT_ID_CODES[code].description


@pytest.mark.parametrize(("qualifier", "code"), [(1, "999"), (1, "160"), (1, "ABC"), (2, "130"), (7, "602")])
def test_unknown_codes_and_qualifiers_are_not_classified(qualifier: int, code: str) -> None:
    assert classify_contact_id(qualifier, code) is None


@given(st.sampled_from(sorted(CONTACT_ID_CODES)), st.sampled_from(list(Qualifier)))
def test_every_table_code_classifies_under_every_qualifier(code: str, qualifier: Qualifier) -> None:
    classification = classify_contact_id(qualifier, code)
    assert classification is not None
    assert classification.is_alarm == (
        classification.category in ALARM_CATEGORIES and qualifier == Qualifier.NEW
    )


@pytest.mark.parametrize(
    ("block", "event"),
    [
        ("1130 01 015", ContactIdEvent(Qualifier.NEW, "130", "01", "015")),
        ("3401 02 007", ContactIdEvent(Qualifier.RESTORE, "401", "02", "007")),
        ("6302 00 000", ContactIdEvent(Qualifier.PREVIOUS, "302", "00", "000")),
        ("113001015", ContactIdEvent(Qualifier.NEW, "130", "01", "015")),  # spaces left out
        ("1130 0b 0fc", ContactIdEvent(Qualifier.NEW, "130", "0B", "0FC")),  # hex digits of DTMF
    ],
)
def test_event_block_is_read(block: str, event: ContactIdEvent) -> None:
    assert parse_contact_id(block) == event


@pytest.mark.parametrize("block", ["2130 01 015", "1130 01 15", "113 01 015", "1130-01-015", ""])
def test_malformed_event_block_is_rejected(block: str) -> None:
    with pytest.raises(ContactIdError):
        parse_contact_id(block)


def test_zone_field_names_a_user_for_open_close_codes() -> None:
    assert parse_contact_id("3401 01 070").user == "070"
    assert parse_contact_id("1130 01 015").user is None


@given(
    st.sampled_from(list(Qualifier)),
    st.from_regex(r"[0-9A-F]{3}", fullmatch=True),
    st.from_regex(r"[0-9A-F]{2}", fullmatch=True),
    st.from_regex(r"[0-9A-F]{3}", fullmatch=True),
)
def test_event_block_round_trips(qualifier: Qualifier, code: str, partition: str, zone: str) -> None:
    event = ContactIdEvent(qualifier, code, partition, zone)
    assert parse_contact_id(format_contact_id(event)) == event


def test_dtmf_block_with_a_good_checksum_is_read() -> None:
    digits = "1234" + "18" + "1131" + "01" + "015"
    block = digits + contact_id_checksum(digits)
    assert parse_dc05_block(block) == ("1234", ContactIdEvent(Qualifier.NEW, "131", "01", "015"))


def test_dtmf_block_with_a_bad_checksum_is_rejected() -> None:
    digits = "1234" + "18" + "1131" + "01" + "015"
    good = contact_id_checksum(digits)
    bad = format((int(good, 16) % 15) + 1, "X") if good != "F" else "1"
    with pytest.raises(ContactIdError):
        parse_dc05_block(digits + bad)


@given(st.from_regex(r"[1-9B-F]{4}(18|98)[136][0-9B-F]{8}", fullmatch=True))
def test_checksum_makes_the_digit_sum_a_multiple_of_15(digits: str) -> None:
    block = digits + contact_id_checksum(digits)
    values = [10 if d == "0" else int(d, 16) for d in block]
    assert sum(values) % 15 == 0
    parse_dc05_block(block)


def test_every_category_has_a_priority_and_life_safety_comes_first() -> None:
    assert set(PRIORITY_BY_CATEGORY) == set(AlarmCategory)
    life_safety = {c for c, p in PRIORITY_BY_CATEGORY.items() if p is Priority.LIFE_SAFETY}
    assert life_safety == {C.PANIC, C.DURESS, C.HOLDUP, C.FIRE, C.MEDICAL}
    assert sorted([Priority.INFO, Priority.LIFE_SAFETY, Priority.TROUBLE])[0] is Priority.LIFE_SAFETY


def test_classification_of_a_restore_is_information() -> None:
    restore = classify(C.FIRE, "Fire", is_restore=True)
    assert (restore.priority, restore.is_alarm, restore.is_restore) == (Priority.INFO, False, True)
