"""The one internal event taxonomy every alarm protocol maps into.

Panels speak Contact ID numbers (``130``), SIA letter pairs (``BA``) and vendor dialects; operators and the
alarm queue should not care which. Each protocol's code table (``receivers/contact_id.py``,
``receivers/sia_codes.py``) names an `AlarmCategory` per code, and `classify` turns that into the
`EventClassification` the rest of the system works with. The dependency points from the adapters to
this module, never back, so the domain can be imported without any receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class AlarmCategory(StrEnum):
    """What happened, in the words an alarm receiving centre uses; the protocol code is kept elsewhere."""

    PANIC = "panic"
    DURESS = "duress"
    HOLDUP = "holdup"
    FIRE = "fire"
    MEDICAL = "medical"
    BURGLARY = "burglary"
    TAMPER = "tamper"
    GAS = "gas"
    WATER = "water"
    ENVIRONMENTAL = "environmental"  # temperature, freeze, humidity, refrigeration
    AUXILIARY = "auxiliary"  # 24-hour non-burglary and untyped zone alarms
    SUPERVISORY = "supervisory"  # fire-system supervision (valves, pumps, pressure)
    TECHNICAL_TROUBLE = "technical_trouble"
    COMMUNICATION_FAILURE = "communication_failure"
    POWER_TROUBLE = "power_trouble"
    BATTERY_TROUBLE = "battery_trouble"
    OPEN = "open"  # disarm
    CLOSE = "close"  # arm
    CANCEL = "cancel"  # a user cancelled an alarm just reported
    ACCESS = "access"  # access control and remote access
    BYPASS = "bypass"
    TEST = "test"
    OTHER = "other"


class Priority(IntEnum):
    """Lower is more urgent, so sorting a queue by priority puts life safety first."""

    LIFE_SAFETY = 1
    PROPERTY = 2
    TROUBLE = 3
    INFO = 4


PRIORITY_BY_CATEGORY: dict[AlarmCategory, Priority] = {
    AlarmCategory.PANIC: Priority.LIFE_SAFETY,
    AlarmCategory.DURESS: Priority.LIFE_SAFETY,
    AlarmCategory.HOLDUP: Priority.LIFE_SAFETY,
    AlarmCategory.FIRE: Priority.LIFE_SAFETY,
    AlarmCategory.MEDICAL: Priority.LIFE_SAFETY,
    AlarmCategory.BURGLARY: Priority.PROPERTY,
    AlarmCategory.TAMPER: Priority.PROPERTY,
    AlarmCategory.GAS: Priority.PROPERTY,
    AlarmCategory.WATER: Priority.PROPERTY,
    AlarmCategory.ENVIRONMENTAL: Priority.PROPERTY,
    AlarmCategory.AUXILIARY: Priority.PROPERTY,
    AlarmCategory.SUPERVISORY: Priority.TROUBLE,
    AlarmCategory.TECHNICAL_TROUBLE: Priority.TROUBLE,
    AlarmCategory.COMMUNICATION_FAILURE: Priority.TROUBLE,
    AlarmCategory.POWER_TROUBLE: Priority.TROUBLE,
    AlarmCategory.BATTERY_TROUBLE: Priority.TROUBLE,
    AlarmCategory.OPEN: Priority.INFO,
    AlarmCategory.CLOSE: Priority.INFO,
    AlarmCategory.CANCEL: Priority.INFO,
    AlarmCategory.ACCESS: Priority.INFO,
    AlarmCategory.BYPASS: Priority.INFO,
    AlarmCategory.TEST: Priority.INFO,
    AlarmCategory.OTHER: Priority.INFO,
}

# Categories whose new event needs an operator to act, as opposed to troubles and reports.
ALARM_CATEGORIES: frozenset[AlarmCategory] = frozenset(
    category for category, priority in PRIORITY_BY_CATEGORY.items() if priority <= Priority.PROPERTY
)


@dataclass(frozen=True, slots=True)
class EventClassification:
    """How the alarm queue should treat one reported event, whatever protocol carried it."""

    category: AlarmCategory
    priority: Priority
    description: str
    is_restore: bool
    is_alarm: bool


def classify(
    category: AlarmCategory, description: str, *, is_restore: bool = False, is_status: bool = False
) -> EventClassification:
    """Build the classification of one event of `category`.

    A restore never outranks plain information: the condition is over, so it must not push a live
    alarm down the queue. A status report (Contact ID qualifier 6) repeats a condition already
    reported, so it keeps its rank but is not a new alarm.
    """
    priority = Priority.INFO if is_restore else PRIORITY_BY_CATEGORY[category]
    is_alarm = category in ALARM_CATEGORIES and not is_restore and not is_status
    return EventClassification(
        category=category,
        priority=priority,
        description=description,
        is_restore=is_restore,
        is_alarm=is_alarm,
    )
