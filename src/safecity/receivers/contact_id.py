"""Ademco Contact ID (SIA DC-05): the event table and the ``QEEE GG CCC`` event block.

Contact ID reaches us inside DC-09 ``ADM-CID`` frames (``#1234|1130 01 015``) and, from older
communicators, as the 16-digit DTMF block ``ACCT MT Q EEE GG CCC S``. Both carry the same fields: a
qualifier (1 new event or opening, 3 restore or closing, 6 still present), a three-digit event code, a
two-digit group (partition) and a three-digit zone, or user number for open/close and access reports.

The table below is data, not branches: one row per code with its text, the internal category it maps
into and whether the last field names a zone or a user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

from safecity.alarms.taxonomy import AlarmCategory as C
from safecity.alarms.taxonomy import EventClassification, classify


class ContactIdError(ValueError):
    """A Contact ID block that does not follow DC-05."""


class Qualifier(IntEnum):
    """The first digit of an event; for open/close codes 1 means opening and 3 closing."""

    NEW = 1
    RESTORE = 3
    PREVIOUS = 6


class Subject(StrEnum):
    """What the last three digits (CCC) number for a given code."""

    ZONE = "zone"
    USER = "user"


@dataclass(frozen=True, slots=True)
class ContactIdCode:
    code: str
    description: str
    category: C
    subject: Subject


Z, U = Subject.ZONE, Subject.USER

# (code, description, category, CCC subject) after the SIA DC-05 list and its later additions.
_ROWS: tuple[tuple[str, str, C, Subject], ...] = (
    # 100: medical alarms
    ("100", "Medical", C.MEDICAL, Z),
    ("101", "Personal emergency", C.MEDICAL, Z),
    ("102", "Fail to report in", C.MEDICAL, Z),
    # 110: fire alarms
    ("110", "Fire", C.FIRE, Z),
    ("111", "Smoke", C.FIRE, Z),
    ("112", "Combustion", C.FIRE, Z),
    ("113", "Water flow", C.FIRE, Z),
    ("114", "Heat", C.FIRE, Z),
    ("115", "Pull station", C.FIRE, Z),
    ("116", "Duct", C.FIRE, Z),
    ("117", "Flame", C.FIRE, Z),
    ("118", "Fire near alarm", C.FIRE, Z),
    # 120: panic alarms
    ("120", "Panic", C.PANIC, Z),
    ("121", "Duress", C.DURESS, U),
    ("122", "Silent panic", C.HOLDUP, Z),
    ("123", "Audible panic", C.PANIC, Z),
    ("124", "Duress, access granted", C.DURESS, Z),
    ("125", "Duress, egress granted", C.DURESS, Z),
    ("126", "Hold-up suspicion print", C.HOLDUP, U),
    # 130: burglar alarms
    ("130", "Burglary", C.BURGLARY, Z),
    ("131", "Perimeter burglary", C.BURGLARY, Z),
    ("132", "Interior burglary", C.BURGLARY, Z),
    ("133", "24-hour burglary (safe)", C.BURGLARY, Z),
    ("134", "Entry/exit burglary", C.BURGLARY, Z),
    ("135", "Day/night burglary", C.BURGLARY, Z),
    ("136", "Outdoor burglary", C.BURGLARY, Z),
    ("137", "Tamper", C.TAMPER, Z),
    ("138", "Burglary near alarm", C.BURGLARY, Z),
    ("139", "Intrusion verifier", C.BURGLARY, Z),
    # 140: general alarms
    ("140", "General alarm", C.BURGLARY, Z),
    ("141", "Polling loop open", C.TAMPER, Z),
    ("142", "Polling loop short", C.TAMPER, Z),
    ("143", "Expansion module failure", C.TECHNICAL_TROUBLE, Z),
    ("144", "Sensor tamper", C.TAMPER, Z),
    ("145", "Expansion module tamper", C.TAMPER, Z),
    ("146", "Silent burglary", C.BURGLARY, Z),
    ("147", "Sensor supervision failure", C.TECHNICAL_TROUBLE, Z),
    # 150/160: 24-hour non-burglary
    ("150", "24-hour non-burglary", C.AUXILIARY, Z),
    ("151", "Gas detected", C.GAS, Z),
    ("152", "Refrigeration", C.ENVIRONMENTAL, Z),
    ("153", "Loss of heat", C.ENVIRONMENTAL, Z),
    ("154", "Water leakage", C.WATER, Z),
    ("155", "Foil break", C.BURGLARY, Z),
    ("156", "Day trouble", C.TECHNICAL_TROUBLE, Z),
    ("157", "Low bottled gas level", C.ENVIRONMENTAL, Z),
    ("158", "High temperature", C.ENVIRONMENTAL, Z),
    ("159", "Low temperature", C.ENVIRONMENTAL, Z),
    ("161", "Loss of air flow", C.ENVIRONMENTAL, Z),
    ("162", "Carbon monoxide detected", C.GAS, Z),
    ("163", "Tank level", C.ENVIRONMENTAL, Z),
    ("168", "High humidity", C.ENVIRONMENTAL, Z),
    ("169", "Low humidity", C.ENVIRONMENTAL, Z),
    # 200: fire supervisory
    ("200", "Fire supervisory", C.SUPERVISORY, Z),
    ("201", "Low water pressure", C.SUPERVISORY, Z),
    ("202", "Low CO2", C.SUPERVISORY, Z),
    ("203", "Gate valve sensor", C.SUPERVISORY, Z),
    ("204", "Low water level", C.SUPERVISORY, Z),
    ("205", "Pump activated", C.SUPERVISORY, Z),
    ("206", "Pump failure", C.SUPERVISORY, Z),
    # 300: system troubles
    ("300", "System trouble", C.TECHNICAL_TROUBLE, Z),
    ("301", "AC loss", C.POWER_TROUBLE, Z),
    ("302", "Low system battery", C.BATTERY_TROUBLE, Z),
    ("303", "RAM checksum bad", C.TECHNICAL_TROUBLE, Z),
    ("304", "ROM checksum bad", C.TECHNICAL_TROUBLE, Z),
    ("305", "System reset", C.TECHNICAL_TROUBLE, Z),
    ("306", "Panel programming changed", C.TECHNICAL_TROUBLE, Z),
    ("307", "Self-test failure", C.TECHNICAL_TROUBLE, Z),
    ("308", "System shutdown", C.TECHNICAL_TROUBLE, Z),
    ("309", "Battery test failure", C.BATTERY_TROUBLE, Z),
    ("310", "Ground fault", C.TECHNICAL_TROUBLE, Z),
    ("311", "Battery missing or dead", C.BATTERY_TROUBLE, Z),
    ("312", "Power supply overcurrent", C.POWER_TROUBLE, Z),
    ("313", "Engineer reset", C.TECHNICAL_TROUBLE, U),
    ("314", "Primary power supply failure", C.POWER_TROUBLE, Z),
    ("316", "System tamper", C.TAMPER, Z),
    # 320: sounder and relay troubles
    ("320", "Sounder/relay trouble", C.TECHNICAL_TROUBLE, Z),
    ("321", "Bell 1 trouble", C.TECHNICAL_TROUBLE, Z),
    ("322", "Bell 2 trouble", C.TECHNICAL_TROUBLE, Z),
    ("323", "Alarm relay trouble", C.TECHNICAL_TROUBLE, Z),
    ("324", "Trouble relay trouble", C.TECHNICAL_TROUBLE, Z),
    ("325", "Reversing relay trouble", C.TECHNICAL_TROUBLE, Z),
    ("326", "Notification appliance circuit 3 trouble", C.TECHNICAL_TROUBLE, Z),
    ("327", "Notification appliance circuit 4 trouble", C.TECHNICAL_TROUBLE, Z),
    # 330/340: system peripheral troubles
    ("330", "System peripheral trouble", C.TECHNICAL_TROUBLE, Z),
    ("331", "Polling loop open", C.TECHNICAL_TROUBLE, Z),
    ("332", "Polling loop short", C.TECHNICAL_TROUBLE, Z),
    ("333", "Expansion module failure", C.TECHNICAL_TROUBLE, Z),
    ("334", "Repeater failure", C.TECHNICAL_TROUBLE, Z),
    ("335", "Local printer out of paper", C.TECHNICAL_TROUBLE, Z),
    ("336", "Local printer failure", C.TECHNICAL_TROUBLE, Z),
    ("337", "Expansion module DC loss", C.POWER_TROUBLE, Z),
    ("338", "Expansion module low battery", C.BATTERY_TROUBLE, Z),
    ("339", "Expansion module reset", C.TECHNICAL_TROUBLE, Z),
    ("341", "Expansion module tamper", C.TAMPER, Z),
    ("342", "Expansion module AC loss", C.POWER_TROUBLE, Z),
    ("343", "Expansion module self-test failure", C.TECHNICAL_TROUBLE, Z),
    ("344", "RF receiver jam detected", C.TAMPER, Z),
    ("345", "AES encryption disabled/enabled", C.TECHNICAL_TROUBLE, Z),
    # 350: communication troubles
    ("350", "Communication trouble", C.COMMUNICATION_FAILURE, Z),
    ("351", "Telco 1 fault", C.COMMUNICATION_FAILURE, Z),
    ("352", "Telco 2 fault", C.COMMUNICATION_FAILURE, Z),
    ("353", "Long range radio transmitter fault", C.COMMUNICATION_FAILURE, Z),
    ("354", "Failure to communicate event", C.COMMUNICATION_FAILURE, Z),
    ("355", "Loss of radio supervision", C.COMMUNICATION_FAILURE, Z),
    ("356", "Loss of central polling", C.COMMUNICATION_FAILURE, Z),
    ("357", "Long range radio VSWR problem", C.COMMUNICATION_FAILURE, Z),
    ("358", "Periodic communication test failure", C.COMMUNICATION_FAILURE, Z),
    # 370: protection loop troubles
    ("370", "Protection loop trouble", C.TECHNICAL_TROUBLE, Z),
    ("371", "Protection loop open", C.TECHNICAL_TROUBLE, Z),
    ("372", "Protection loop short", C.TECHNICAL_TROUBLE, Z),
    ("373", "Fire trouble", C.TECHNICAL_TROUBLE, Z),
    ("374", "Exit error alarm", C.BURGLARY, Z),
    ("375", "Panic zone trouble", C.TECHNICAL_TROUBLE, Z),
    ("376", "Hold-up zone trouble", C.TECHNICAL_TROUBLE, Z),
    ("377", "Swinger trouble", C.TECHNICAL_TROUBLE, Z),
    ("378", "Cross-zone trouble", C.TECHNICAL_TROUBLE, Z),
    # 380/390: sensor troubles
    ("380", "Sensor trouble", C.TECHNICAL_TROUBLE, Z),
    ("381", "Loss of supervision, RF", C.TECHNICAL_TROUBLE, Z),
    ("382", "Loss of supervision, RPM", C.TECHNICAL_TROUBLE, Z),
    ("383", "Sensor tamper", C.TAMPER, Z),
    ("384", "RF low battery", C.BATTERY_TROUBLE, Z),
    ("385", "Smoke detector high sensitivity", C.TECHNICAL_TROUBLE, Z),
    ("386", "Smoke detector low sensitivity", C.TECHNICAL_TROUBLE, Z),
    ("387", "Intrusion detector high sensitivity", C.TECHNICAL_TROUBLE, Z),
    ("388", "Intrusion detector low sensitivity", C.TECHNICAL_TROUBLE, Z),
    ("389", "Sensor self-test failure", C.TECHNICAL_TROUBLE, Z),
    ("391", "Sensor watch trouble", C.TECHNICAL_TROUBLE, Z),
    ("392", "Drift compensation error", C.TECHNICAL_TROUBLE, Z),
    ("393", "Maintenance alert", C.TECHNICAL_TROUBLE, Z),
    ("394", "CO detector needs replacement", C.TECHNICAL_TROUBLE, Z),
    # 400: open/close; every row filed under OPEN reads its qualifier as 1 opening, 3 closing
    ("400", "Open/close", C.OPEN, U),
    ("401", "Open/close by user", C.OPEN, U),
    ("402", "Group open/close", C.OPEN, U),
    ("403", "Automatic open/close", C.OPEN, U),
    ("404", "Late to open/close", C.OPEN, U),
    ("405", "Deferred open/close", C.OPEN, U),
    ("406", "Cancel", C.CANCEL, U),
    ("407", "Remote arm/disarm", C.OPEN, U),
    ("408", "Quick arm", C.OPEN, U),
    ("409", "Keyswitch open/close", C.OPEN, U),
    # 410: remote access
    ("411", "Callback request made", C.ACCESS, U),
    ("412", "Successful download/access", C.ACCESS, U),
    ("413", "Unsuccessful access", C.ACCESS, U),
    ("414", "System shutdown command received", C.ACCESS, U),
    ("415", "Dialer shutdown command received", C.ACCESS, U),
    ("416", "Successful upload", C.ACCESS, U),
    # 420/430: access control
    ("421", "Access denied", C.ACCESS, U),
    ("422", "Access report by user", C.ACCESS, U),
    ("423", "Forced access", C.BURGLARY, Z),
    ("424", "Egress denied", C.ACCESS, U),
    ("425", "Egress granted", C.ACCESS, U),
    ("426", "Access door propped open", C.ACCESS, Z),
    ("427", "Access point door status monitor trouble", C.TECHNICAL_TROUBLE, Z),
    ("428", "Access point request-to-exit trouble", C.TECHNICAL_TROUBLE, Z),
    ("429", "Access program mode entry", C.ACCESS, U),
    ("430", "Access program mode exit", C.ACCESS, U),
    ("431", "Access threat level change", C.ACCESS, U),
    ("432", "Access relay/trigger failure", C.TECHNICAL_TROUBLE, Z),
    ("433", "Access request-to-exit shunt", C.ACCESS, Z),
    ("434", "Access door status monitor shunt", C.ACCESS, Z),
    # 440/450/460: arming variants and open/close exceptions
    ("441", "Armed stay", C.OPEN, U),
    ("442", "Keyswitch armed stay", C.OPEN, U),
    ("450", "Exception open/close", C.OPEN, U),
    ("451", "Early open/close", C.OPEN, U),
    ("452", "Late open/close", C.OPEN, U),
    ("453", "Failed to open", C.OTHER, U),
    ("454", "Failed to close", C.OTHER, U),
    ("455", "Auto-arm failed", C.OTHER, U),
    ("456", "Partial arm", C.OPEN, U),
    ("457", "Exit error by user", C.OTHER, U),
    ("458", "User on premises", C.OTHER, U),
    ("459", "Recent close", C.OTHER, U),
    ("461", "Wrong code entry", C.TAMPER, Z),
    ("462", "Legal code entry", C.ACCESS, U),
    ("463", "Re-arm after alarm", C.OPEN, U),
    ("464", "Auto-arm time extended", C.OTHER, U),
    ("465", "Panic alarm reset", C.OTHER, Z),
    ("466", "Service on/off premises", C.OTHER, U),
    # 500: disables and bypasses (qualifier 3 ends them)
    ("501", "Access reader disable", C.BYPASS, Z),
    ("520", "Sounder/relay disable", C.BYPASS, Z),
    ("521", "Bell 1 disable", C.BYPASS, Z),
    ("522", "Bell 2 disable", C.BYPASS, Z),
    ("523", "Alarm relay disable", C.BYPASS, Z),
    ("524", "Trouble relay disable", C.BYPASS, Z),
    ("525", "Reversing relay disable", C.BYPASS, Z),
    ("526", "Notification appliance circuit 3 disable", C.BYPASS, Z),
    ("527", "Notification appliance circuit 4 disable", C.BYPASS, Z),
    ("531", "Module added", C.OTHER, Z),
    ("532", "Module removed", C.OTHER, Z),
    ("551", "Dialer disabled", C.BYPASS, Z),
    ("552", "Radio transmitter disabled", C.BYPASS, Z),
    ("553", "Remote upload/download disabled", C.BYPASS, Z),
    ("570", "Zone/sensor bypass", C.BYPASS, Z),
    ("571", "Fire bypass", C.BYPASS, Z),
    ("572", "24-hour zone bypass", C.BYPASS, Z),
    ("573", "Burglary bypass", C.BYPASS, Z),
    ("574", "Group bypass", C.BYPASS, U),
    ("575", "Swinger bypass", C.BYPASS, Z),
    ("576", "Access zone shunt", C.BYPASS, Z),
    ("577", "Access point bypass", C.BYPASS, Z),
    # 600: test and miscellaneous
    ("601", "Manual trigger test report", C.TEST, Z),
    ("602", "Periodic test report", C.TEST, Z),
    ("603", "Periodic RF transmission", C.TEST, Z),
    ("604", "Fire test", C.TEST, U),
    ("605", "Status report to follow", C.OTHER, Z),
    ("606", "Listen-in to follow", C.OTHER, Z),
    ("607", "Walk test mode", C.TEST, U),
    ("608", "Periodic test, system trouble present", C.TEST, Z),
    ("609", "Video transmitter active", C.OTHER, Z),
    ("611", "Point tested OK", C.TEST, Z),
    ("612", "Point not tested", C.TEST, Z),
    ("613", "Intrusion zone walk tested", C.TEST, Z),
    ("614", "Fire zone walk tested", C.TEST, Z),
    ("615", "Panic zone walk tested", C.TEST, Z),
    ("616", "Service request", C.OTHER, Z),
    ("621", "Event log reset", C.OTHER, Z),
    ("622", "Event log 50% full", C.OTHER, Z),
    ("623", "Event log 90% full", C.OTHER, Z),
    ("624", "Event log overflow", C.OTHER, Z),
    ("625", "Time/date reset", C.OTHER, U),
    ("626", "Time/date inaccurate", C.OTHER, Z),
    ("627", "Program mode entry", C.OTHER, Z),
    ("628", "Program mode exit", C.OTHER, Z),
    ("629", "32-hour event log marker", C.OTHER, Z),
    ("630", "Schedule change", C.OTHER, Z),
    ("631", "Exception schedule change", C.OTHER, Z),
    ("632", "Access schedule change", C.OTHER, Z),
    ("641", "Senior watch trouble", C.OTHER, Z),
    ("642", "Latch-key supervision", C.OTHER, U),
    ("651", "Reserved for Ademco use", C.OTHER, Z),
    ("652", "Reserved for Ademco use", C.OTHER, U),
    ("653", "Reserved for Ademco use", C.OTHER, U),
    ("654", "System inactivity", C.OTHER, Z),
    # 700: derived-channel events; 750-789 are left to the installer and added below
    ("796", "Unable to output signal (derived channel)", C.COMMUNICATION_FAILURE, Z),
    ("798", "STU controller down (derived channel)", C.COMMUNICATION_FAILURE, Z),
    # 900: downloads, diagnostics and late additions
    ("900", "Download abort", C.OTHER, U),
    ("901", "Download start/end", C.OTHER, U),
    ("902", "Download interrupted", C.OTHER, U),
    ("903", "Device flash update started/completed", C.OTHER, Z),
    ("904", "Device flash update failed", C.TECHNICAL_TROUBLE, Z),
    ("910", "Auto-close with bypass", C.OPEN, Z),
    ("911", "Bypass closing", C.OPEN, Z),
    ("912", "Fire alarm silence", C.OTHER, Z),
    ("913", "Supervisory point test start/end", C.TEST, U),
    ("914", "Hold-up test start/end", C.TEST, U),
    ("915", "Burglary test print start/end", C.TEST, U),
    ("916", "Supervisory test print start/end", C.TEST, U),
    ("917", "Burglary diagnostics start/end", C.TEST, Z),
    ("918", "Fire diagnostics start/end", C.TEST, Z),
    ("919", "Untyped diagnostics", C.TEST, Z),
    ("920", "Trouble closing", C.OTHER, U),
    ("921", "Access denied, code unknown", C.ACCESS, Z),
    ("922", "Supervisory point alarm", C.SUPERVISORY, Z),
    ("923", "Supervisory point bypass", C.BYPASS, Z),
    ("924", "Supervisory point trouble", C.TECHNICAL_TROUBLE, Z),
    ("925", "Hold-up point bypass", C.BYPASS, Z),
    ("926", "AC failure for 4 hours", C.POWER_TROUBLE, Z),
    ("927", "Output trouble", C.TECHNICAL_TROUBLE, Z),
    ("928", "User code for event", C.OTHER, U),
    ("929", "Log-off", C.OTHER, U),
)

_USER_ASSIGNED = tuple((str(n), f"User-assigned event {n}", C.OTHER, Z) for n in range(750, 790))

CONTACT_ID_CODES: Mapping[str, ContactIdCode] = MappingProxyType(
    {row[0]: ContactIdCode(*row) for row in sorted(_ROWS + _USER_ASSIGNED)}
)


@dataclass(frozen=True, slots=True)
class ContactIdEvent:
    """One Contact ID event; `zone` holds the user number when the code reports a user."""

    qualifier: Qualifier
    code: str
    partition: str
    zone: str

    @property
    def definition(self) -> ContactIdCode | None:
        return CONTACT_ID_CODES.get(self.code)

    @property
    def user(self) -> str | None:
        definition = self.definition
        return self.zone if definition is not None and definition.subject is Subject.USER else None


_EVENT_BLOCK = re.compile(r"([0-9A-Fa-f])([0-9A-Fa-f]{3}) ?([0-9A-Fa-f]{2}) ?([0-9A-Fa-f]{3})")


def parse_contact_id(block: str) -> ContactIdEvent:
    """Parse ``QEEE GG CCC`` as DC-09 ADM-CID carries it (some panels leave the spaces out)."""
    match = _EVENT_BLOCK.fullmatch(block)
    if match is None:
        raise ContactIdError(f"not a Contact ID event block: {block!r}")
    qualifier_digit, code, partition, zone = match.groups()
    try:
        qualifier = Qualifier(int(qualifier_digit, 16))
    except ValueError:
        raise ContactIdError(f"unknown Contact ID qualifier {qualifier_digit!r}") from None
    return ContactIdEvent(qualifier, code.upper(), partition.upper(), zone.upper())


def format_contact_id(event: ContactIdEvent) -> str:
    return f"{int(event.qualifier)}{event.code} {event.partition} {event.zone}"


def _digit_value(digit: str) -> int:
    # DTMF Contact ID counts 0 as 10 and uses B-F for 11-15 (A is never sent).
    value = int(digit, 16)
    return 10 if value == 0 else value


def contact_id_checksum(digits: str) -> str:
    """The checksum digit that makes the sum of all 16 digit values a multiple of 15."""
    value = 15 - sum(_digit_value(d) for d in digits) % 15  # 1 to 15
    return "0" if value == 10 else format(value, "X")


_DC05_BLOCK = re.compile(r"([0-9B-Fb-f]{4})(18|98)([0-9B-Fb-f]{9})([0-9B-Fb-f])")


def parse_dc05_block(digits: str) -> tuple[str, ContactIdEvent]:
    """Parse the 16-digit DTMF block ``ACCT MT QEEE GG CCC S``; returns (account, event)."""
    compact = digits.replace(" ", "")
    match = _DC05_BLOCK.fullmatch(compact)
    if match is None:
        raise ContactIdError(f"not a Contact ID DTMF block: {digits!r}")
    if sum(_digit_value(d) for d in compact) % 15 != 0:
        raise ContactIdError(f"Contact ID checksum mismatch in {digits!r}")
    account, _message_type, event_digits, _checksum = match.groups()
    return account.upper(), parse_contact_id(event_digits)


def classify_contact_id(qualifier: int, code: str) -> EventClassification | None:
    """Map a qualifier and event code into the internal taxonomy; None for codes not in the table."""
    definition = CONTACT_ID_CODES.get(code.upper())
    if definition is None or qualifier not in tuple(Qualifier):
        return None
    if definition.category is C.OPEN:
        # Open/close codes use the qualifier for direction: neither side is a restore.
        category = C.CLOSE if qualifier == Qualifier.RESTORE else C.OPEN
        return classify(category, definition.description, is_status=qualifier == Qualifier.PREVIOUS)
    return classify(
        definition.category,
        definition.description,
        is_restore=qualifier == Qualifier.RESTORE,
        is_status=qualifier == Qualifier.PREVIOUS,
    )
