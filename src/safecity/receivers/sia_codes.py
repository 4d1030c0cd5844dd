"""SIA DC-03 event codes: the two-letter vocabulary of ``SIA-DCS`` messages (``BA`` burglary alarm…).

Most codes come in families: a first letter names the kind of zone (B burglary, F fire, W water…) and
the second the transition (A alarm, H alarm restore, T trouble, B bypass…). Those families are written
once in `_ZONE_FAMILIES`; everything else is listed row by row. Each code names its internal category
and whether it ends a condition, so the alarm queue can pair alarms with restores across protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from safecity.alarms.taxonomy import AlarmCategory as C
from safecity.alarms.taxonomy import EventClassification, classify


class SiaSubject(StrEnum):
    """What the number after a code counts, which decides how an operator reads it."""

    ZONE = "zone"
    USER = "user"
    AREA = "area"
    DOOR = "door"
    DEVICE = "device"  # expander, printer, line, relay, output, network…
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SiaCode:
    code: str
    description: str
    category: C
    is_restore: bool
    subject: SiaSubject


Z, U, A, D = SiaSubject.ZONE, SiaSubject.USER, SiaSubject.AREA, SiaSubject.DOOR
X, N = SiaSubject.DEVICE, SiaSubject.NONE

# First letter -> (name, category of its alarms) for the families sharing the standard transitions.
_ZONE_FAMILIES: dict[str, tuple[str, C]] = {
    "B": ("Burglary", C.BURGLARY),
    "F": ("Fire", C.FIRE),
    "G": ("Gas", C.GAS),
    "H": ("Hold-up", C.HOLDUP),
    "K": ("Heat", C.FIRE),
    "M": ("Medical", C.MEDICAL),
    "P": ("Panic", C.PANIC),
    "Q": ("Emergency", C.MEDICAL),
    "S": ("Sprinkler", C.FIRE),
    "T": ("Tamper", C.TAMPER),
    "U": ("Untyped zone", C.AUXILIARY),
    "W": ("Water", C.WATER),
    "Z": ("Freeze", C.ENVIRONMENTAL),
}
# Second letter -> (wording, category or None for "the family's alarm category", is_restore).
_TRANSITIONS: dict[str, tuple[str, C | None, bool]] = {
    "A": ("alarm", None, False),
    "H": ("alarm restore", None, True),
    "R": ("restoral", None, True),
    "B": ("bypass", C.BYPASS, False),
    "U": ("unbypass", C.BYPASS, True),
    "T": ("trouble", C.TECHNICAL_TROUBLE, False),
    "J": ("trouble restore", C.TECHNICAL_TROUBLE, True),
    "S": ("supervisory", C.TECHNICAL_TROUBLE, False),
}
# Where a family bends the pattern: TS is "test start", tamper troubles stay tamper, fire-system
# supervision is supervisory rather than a plain trouble.
_TRANSITION_EXCEPTIONS: dict[str, C | None] = {"TS": None, "TT": C.TAMPER, "TJ": C.TAMPER}
_SUPERVISORY_FAMILIES = frozenset({"F", "S"})

# (code, description, category, is_restore, subject): the codes outside the families above.
_ROWS: tuple[tuple[str, str, C, bool, SiaSubject], ...] = (
    ("AA", "Alarm, panel substitution", C.TAMPER, False, N),
    ("AB", "Abort", C.CANCEL, False, Z),
    ("AF", "Arming event (vendor)", C.OTHER, False, Z),
    ("AN", "Analog restoral", C.TECHNICAL_TROUBLE, True, Z),
    ("AR", "AC restoral", C.POWER_TROUBLE, True, N),
    ("AS", "Analog service", C.TECHNICAL_TROUBLE, False, Z),
    ("AT", "AC trouble", C.POWER_TROUBLE, False, N),
    ("BC", "Burglary cancel", C.CANCEL, False, U),
    ("BD", "Swinger trouble", C.TECHNICAL_TROUBLE, False, Z),
    ("BE", "Swinger trouble restore", C.TECHNICAL_TROUBLE, True, Z),
    ("BG", "Unverified event, burglary", C.BURGLARY, False, Z),
    ("BM", "Burglary alarm, cross point", C.BURGLARY, False, Z),
    ("BV", "Burglary verified", C.BURGLARY, False, A),
    ("BX", "Burglary test", C.TEST, False, Z),
    ("BZ", "Missing supervision", C.TECHNICAL_TROUBLE, False, Z),
    ("CA", "Automatic closing", C.CLOSE, False, A),
    ("CB", "Arming event (vendor)", C.OTHER, False, A),
    ("CC", "Arming event (vendor)", C.OTHER, False, A),
    ("CD", "Closing delinquent", C.OTHER, False, A),
    ("CE", "Closing extend", C.OTHER, False, U),
    ("CF", "Forced closing", C.CLOSE, False, U),
    ("CG", "Close area", C.CLOSE, False, A),
    ("CI", "Fail to close", C.OTHER, False, A),
    ("CJ", "Late close", C.CLOSE, False, U),
    ("CK", "Early close", C.CLOSE, False, U),
    ("CL", "Closing report", C.CLOSE, False, U),
    ("CM", "Missing alarm, recent closing", C.OTHER, False, Z),
    ("CO", "Command sent", C.OTHER, False, N),
    ("CP", "Automatic closing", C.CLOSE, False, U),
    ("CQ", "Remote closing", C.CLOSE, False, U),
    ("CR", "Recent closing", C.OTHER, False, U),
    ("CS", "Closing keyswitch", C.CLOSE, False, Z),
    ("CT", "Late to open", C.OTHER, False, A),
    ("CW", "Was force armed", C.CLOSE, False, A),
    ("CX", "Custom function executed", C.OTHER, False, N),
    ("CZ", "Point closing", C.CLOSE, False, Z),
    ("DA", "Card assigned", C.ACCESS, False, U),
    ("DB", "Card deleted", C.ACCESS, False, U),
    ("DC", "Access closed", C.ACCESS, False, D),
    ("DD", "Access denied", C.ACCESS, False, D),
    ("DE", "Request to enter", C.ACCESS, False, D),
    ("DF", "Door forced", C.BURGLARY, False, D),
    ("DG", "Access granted", C.ACCESS, False, D),
    ("DH", "Door left open, restoral", C.BURGLARY, True, D),
    ("DI", "Access denied, passback", C.ACCESS, False, D),
    ("DJ", "Door forced, trouble", C.TECHNICAL_TROUBLE, False, D),
    ("DK", "Access lockout", C.ACCESS, False, D),
    ("DL", "Door left open, alarm", C.BURGLARY, False, D),
    ("DM", "Door left open, trouble", C.TECHNICAL_TROUBLE, False, D),
    ("DN", "Door left open", C.ACCESS, False, D),
    ("DO", "Access open", C.ACCESS, False, D),
    ("DP", "Access denied, unauthorized time", C.ACCESS, False, D),
    ("DQ", "Access denied, unauthorized arming state", C.ACCESS, False, D),
    ("DR", "Door restoral", C.ACCESS, True, D),
    ("DS", "Door station", C.ACCESS, False, D),
    ("DT", "Access trouble", C.TECHNICAL_TROUBLE, False, N),
    ("DU", "Dealer ID", C.OTHER, False, N),
    ("DV", "Access denied, unauthorized entry level", C.ACCESS, False, D),
    ("DW", "Access denied, interlock", C.ACCESS, False, D),
    ("DX", "Request to exit", C.ACCESS, False, D),
    ("DY", "Door locked", C.ACCESS, False, D),
    ("DZ", "Access denied, door secured", C.ACCESS, False, D),
    ("EA", "Exit alarm", C.BURGLARY, False, Z),
    ("EE", "Exit error", C.OTHER, False, U),
    ("EJ", "Expansion tamper restore", C.TAMPER, True, X),
    ("EM", "Expansion device missing", C.TECHNICAL_TROUBLE, False, X),
    ("EN", "Expansion missing restore", C.TECHNICAL_TROUBLE, True, X),
    ("ER", "Expansion restoral", C.TECHNICAL_TROUBLE, True, X),
    ("ES", "Expansion device tamper", C.TAMPER, False, X),
    ("ET", "Expansion trouble", C.TECHNICAL_TROUBLE, False, X),
    ("EX", "External device condition", C.OTHER, False, X),
    ("EZ", "Missing alarm, exit error", C.OTHER, False, Z),
    ("FC", "Fire cancel", C.CANCEL, False, Z),
    ("FG", "Unverified event, fire", C.FIRE, False, Z),
    ("FI", "Fire test begin", C.TEST, False, A),
    ("FK", "Fire test end", C.TEST, False, A),
    ("FL", "Fire alarm silenced", C.OTHER, False, Z),
    ("FM", "Fire alarm, cross point", C.FIRE, False, Z),
    ("FQ", "Fire supervisory trouble restore", C.SUPERVISORY, True, Z),
    ("FV", "Fire supervision restore", C.SUPERVISORY, True, Z),
    ("FW", "Fire supervisory trouble", C.SUPERVISORY, False, Z),
    ("FX", "Fire test", C.TEST, False, Z),
    ("FY", "Missing fire trouble", C.TECHNICAL_TROUBLE, False, Z),
    ("FZ", "Missing fire supervision", C.SUPERVISORY, False, Z),
    ("GX", "Gas test", C.TEST, False, Z),
    ("IA", "Equipment failure condition", C.TECHNICAL_TROUBLE, False, X),
    ("IR", "Equipment failure restoral", C.TECHNICAL_TROUBLE, True, X),
    ("JA", "User code tamper", C.TAMPER, False, A),
    ("JC", "User code tamper cancelled", C.TAMPER, True, A),
    ("JD", "Date changed", C.OTHER, False, U),
    ("JH", "Holiday changed", C.OTHER, False, U),
    ("JK", "Latchkey alert", C.OTHER, False, U),
    ("JL", "Log threshold", C.OTHER, False, N),
    ("JO", "Log overflow", C.OTHER, False, N),
    ("JP", "User on premises", C.OTHER, False, U),
    ("JR", "Schedule executed", C.OTHER, False, A),
    ("JS", "Schedule changed", C.OTHER, False, U),
    ("JT", "Time changed", C.OTHER, False, U),
    ("JV", "User code changed", C.OTHER, False, U),
    ("JX", "User code deleted", C.OTHER, False, U),
    ("JY", "User code added", C.OTHER, False, U),
    ("JZ", "User level set", C.OTHER, False, U),
    ("LB", "Local program begin", C.OTHER, False, N),
    ("LD", "Local program denied", C.OTHER, False, N),
    ("LE", "Listen-in ended", C.OTHER, False, N),
    ("LF", "Listen-in begin", C.OTHER, False, N),
    ("LR", "Phone line restoral", C.COMMUNICATION_FAILURE, True, X),
    ("LS", "Local program success", C.OTHER, False, N),
    ("LT", "Phone line trouble", C.COMMUNICATION_FAILURE, False, X),
    ("LU", "Local program fail", C.OTHER, False, N),
    ("LX", "Local programming ended", C.OTHER, False, N),
    ("MI", "Message", C.OTHER, False, N),
    ("NA", "No activity", C.OTHER, False, Z),
    ("NB", "Arming event (vendor)", C.OTHER, False, A),
    ("NC", "Network condition", C.COMMUNICATION_FAILURE, False, X),
    ("ND", "Arming event (vendor)", C.OTHER, False, A),
    ("NE", "Arming event (vendor)", C.OTHER, False, A),
    ("NF", "Forced perimeter arm", C.CLOSE, False, A),
    ("NL", "Perimeter armed", C.CLOSE, False, A),
    ("NM", "Perimeter armed, user defined", C.CLOSE, False, A),
    ("NO", "Arming event (vendor)", C.OTHER, False, A),
    ("NP", "Arming event (vendor)", C.OTHER, False, Z),
    ("NR", "Network restoral", C.COMMUNICATION_FAILURE, True, X),
    ("NS", "Activity resumed", C.OTHER, True, Z),
    ("NT", "Network failure", C.COMMUNICATION_FAILURE, False, X),
    ("OA", "Automatic opening", C.OPEN, False, A),
    ("OB", "Arming event (vendor)", C.OTHER, False, A),
    ("OC", "Cancel report", C.CANCEL, False, U),
    ("OG", "Open area", C.OPEN, False, A),
    ("OH", "Early to open from alarm", C.OPEN, False, U),
    ("OI", "Fail to open", C.OTHER, False, A),
    ("OJ", "Late open", C.OPEN, False, U),
    ("OK", "Early open", C.OPEN, False, U),
    ("OL", "Late to open from alarm", C.OPEN, False, U),
    ("OP", "Opening report", C.OPEN, False, U),
    ("OQ", "Remote opening", C.OPEN, False, U),
    ("OR", "Disarm from alarm", C.OPEN, False, U),
    ("OS", "Opening keyswitch", C.OPEN, False, Z),
    ("OT", "Late to close", C.OTHER, False, U),
    ("OU", "Output state, trouble", C.TECHNICAL_TROUBLE, False, X),
    ("OV", "Output state, restore", C.TECHNICAL_TROUBLE, True, X),
    ("OZ", "Point opening", C.OPEN, False, Z),
    ("PC", "Photo on demand enabled", C.OTHER, False, U),
    ("PD", "Photo on demand disabled", C.OTHER, False, U),
    ("PE", "Photo by scenario enabled", C.OTHER, False, N),
    ("PF", "Malfunction", C.TECHNICAL_TROUBLE, False, Z),
    ("PG", "Photo by scenario disabled", C.OTHER, False, N),
    ("PO", "Malfunction restore", C.TECHNICAL_TROUBLE, True, N),
    ("RA", "Remote programmer call failed", C.OTHER, False, N),
    ("RB", "Remote program begin", C.OTHER, False, N),
    ("RC", "Relay close", C.OTHER, False, X),
    ("RD", "Remote program denied", C.OTHER, False, N),
    ("RN", "Remote reset", C.OTHER, False, N),
    ("RO", "Relay open", C.OTHER, False, X),
    ("RP", "Automatic test", C.TEST, False, N),
    ("RR", "Power up", C.OTHER, False, N),
    ("RS", "Remote program success", C.OTHER, False, N),
    ("RT", "Data lost", C.TECHNICAL_TROUBLE, False, X),
    ("RU", "Remote program fail", C.OTHER, False, N),
    ("RX", "Manual test", C.TEST, False, U),
    ("RY", "Test off normal", C.TEST, False, Z),
    ("SC", "Change of state", C.OTHER, False, N),
    ("SM", "Malfunction", C.TECHNICAL_TROUBLE, False, Z),
    ("TC", "All points tested", C.TEST, False, N),
    ("TE", "Test end", C.TEST, False, N),
    ("TP", "Walk test point", C.TEST, False, Z),
    ("TS", "Test start", C.TEST, False, N),
    ("TW", "Area watch start", C.OTHER, False, N),
    ("TX", "Test report", C.TEST, False, N),
    ("TZ", "Area watch end", C.OTHER, False, N),
    ("UG", "Unverified event, untyped", C.AUXILIARY, False, Z),
    ("UX", "Undefined", C.OTHER, False, N),
    ("UY", "Untyped missing trouble", C.TECHNICAL_TROUBLE, False, Z),
    ("UZ", "Untyped missing alarm", C.AUXILIARY, False, Z),
    ("VI", "Printer paper in", C.TECHNICAL_TROUBLE, True, X),
    ("VO", "Printer paper out", C.TECHNICAL_TROUBLE, False, X),
    ("VR", "Printer restore", C.TECHNICAL_TROUBLE, True, X),
    ("VT", "Printer trouble", C.TECHNICAL_TROUBLE, False, X),
    ("VX", "Printer test", C.TEST, False, X),
    ("VY", "Printer online", C.TECHNICAL_TROUBLE, True, N),
    ("VZ", "Printer offline", C.TECHNICAL_TROUBLE, False, N),
    ("XA", "Extra account report", C.OTHER, False, N),
    ("XC", "Malfunction restore", C.TECHNICAL_TROUBLE, True, N),
    ("XE", "Extra point", C.OTHER, False, Z),
    ("XF", "Extra RF point", C.OTHER, False, Z),
    ("XH", "RF interference restoral", C.TAMPER, True, X),
    ("XI", "Sensor reset", C.OTHER, False, Z),
    ("XJ", "RF receiver tamper restoral", C.TAMPER, True, X),
    ("XL", "Low received signal strength", C.COMMUNICATION_FAILURE, False, X),
    ("XM", "Missing alarm, cross point", C.OTHER, False, Z),
    ("XQ", "RF interference", C.TAMPER, False, X),
    ("XR", "Transmitter battery restoral", C.BATTERY_TROUBLE, True, Z),
    ("XS", "RF receiver tamper", C.TAMPER, False, X),
    ("XT", "Transmitter battery trouble", C.BATTERY_TROUBLE, False, Z),
    ("XW", "Forced point", C.OTHER, False, Z),
    ("XX", "Fail to test", C.TECHNICAL_TROUBLE, False, N),
    ("YA", "Bell fault", C.TECHNICAL_TROUBLE, False, N),
    ("YB", "Busy seconds", C.OTHER, False, X),
    ("YC", "Communications fail", C.COMMUNICATION_FAILURE, False, N),
    ("YD", "Receiver line card trouble", C.TECHNICAL_TROUBLE, False, X),
    ("YE", "Receiver line card restored", C.TECHNICAL_TROUBLE, True, X),
    ("YF", "Parameter checksum fail", C.TECHNICAL_TROUBLE, False, N),
    ("YG", "Parameter changed", C.OTHER, False, N),
    ("YH", "Bell restored", C.TECHNICAL_TROUBLE, True, N),
    ("YI", "Overcurrent trouble", C.POWER_TROUBLE, False, N),
    ("YJ", "Overcurrent restore", C.POWER_TROUBLE, True, N),
    ("YK", "Communications restoral", C.COMMUNICATION_FAILURE, True, N),
    ("YM", "System battery missing", C.BATTERY_TROUBLE, False, N),
    ("YN", "Invalid report", C.OTHER, False, N),
    ("YO", "Unknown message", C.OTHER, False, N),
    ("YP", "Power supply trouble", C.POWER_TROUBLE, False, N),
    ("YQ", "Power supply restored", C.POWER_TROUBLE, True, N),
    ("YR", "System battery restoral", C.BATTERY_TROUBLE, True, N),
    ("YS", "Communications trouble", C.COMMUNICATION_FAILURE, False, N),
    ("YT", "System battery trouble", C.BATTERY_TROUBLE, False, N),
    ("YU", "Diagnostic error", C.TECHNICAL_TROUBLE, False, X),
    ("YW", "Watchdog reset", C.TECHNICAL_TROUBLE, False, N),
    ("YX", "Service required", C.TECHNICAL_TROUBLE, False, N),
    ("YY", "Status report", C.OTHER, False, N),
    ("YZ", "Service completed", C.TECHNICAL_TROUBLE, True, N),
    ("ZY", "Common event (vendor)", C.OTHER, False, X),
    ("ZZ", "Common event (vendor)", C.OTHER, False, X),
)


def _family_rows() -> dict[str, SiaCode]:
    rows: dict[str, SiaCode] = {}
    for family, (name, alarm_category) in _ZONE_FAMILIES.items():
        for transition, (wording, category, is_restore) in _TRANSITIONS.items():
            code = family + transition
            if code in _TRANSITION_EXCEPTIONS:
                exception = _TRANSITION_EXCEPTIONS[code]
                if exception is None:
                    continue
                category = exception
            elif transition == "S" and family in _SUPERVISORY_FAMILIES:
                category = C.SUPERVISORY
            rows[code] = SiaCode(code, f"{name} {wording}", category or alarm_category, is_restore, Z)
    return rows


SIA_CODES: Mapping[str, SiaCode] = MappingProxyType(
    dict(sorted((_family_rows() | {row[0]: SiaCode(*row) for row in _ROWS}).items()))
)


def classify_sia(code: str) -> EventClassification | None:
    """Map a SIA event code into the internal taxonomy; None for codes not in the table."""
    definition = SIA_CODES.get(code.upper())
    if definition is None:
        return None
    return classify(definition.category, definition.description, is_restore=definition.is_restore)
