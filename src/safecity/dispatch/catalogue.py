"""The incident-type catalogue and the unit kinds: data, configurable, no code per type.

A type says how urgent it is by default and which capabilities a unit must bring; an alarm
category (the alarm centre's vocabulary, `alarms.taxonomy.AlarmCategory` values) maps to a type.
A deployment may load its own catalogue (`Catalogue.from_mapping`, e.g. from TOML); the default
below fits a city security operator with rapid-response groups, patrols and the public services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from safecity.dispatch.logic import IncidentPriority, UnknownIncidentType


@dataclass(frozen=True, slots=True)
class IncidentType:
    code: str
    label: str
    default_priority: IncidentPriority
    capabilities: frozenset[str] = frozenset()
    """Every unit sent must bring these."""
    p1_capabilities: frozenset[str] = frozenset()
    """Needed in addition when the incident is P1 (a defibrillator for a life-threatening call)."""

    def required(self, priority: IncidentPriority) -> frozenset[str]:
        return self.capabilities | (self.p1_capabilities if priority is IncidentPriority.P1 else frozenset())


@dataclass(frozen=True, slots=True)
class UnitKind:
    code: str
    capabilities: frozenset[str]
    """What a unit of this kind brings unless its record says otherwise."""
    by_road: bool = True
    """Whether the road graph's travel times apply (a drone flies; dispatch leaves it to the drones domain)."""


UNIT_KINDS: dict[str, UnitKind] = {
    kind.code: kind
    for kind in (
        UnitKind("rapid_response_group", frozenset({"security_response", "first_aid", "aed"})),
        UnitKind("patrol_car", frozenset({"security_response", "first_aid", "traffic_control"})),
        UnitKind("foot_inspector", frozenset({"security_response", "first_aid"})),
        UnitKind("fire_engine", frozenset({"fire_suppression", "first_aid", "aed", "traffic_control"})),
        UnitKind("ambulance", frozenset({"first_aid", "aed", "medical_transport"})),
        UnitKind("drone", frozenset({"aerial_view", "thermal_camera"}), by_road=False),
    )
}


@dataclass(frozen=True)
class Catalogue:
    types: Mapping[str, IncidentType]
    by_alarm_category: Mapping[str, str]
    fallback_type: str = "alarm_check"
    by_source: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = {t for t in (*self.by_alarm_category.values(), *self.by_source.values(), self.fallback_type)
                   if t not in self.types}
        if unknown:
            raise UnknownIncidentType(f"catalogue maps to unknown incident types: {sorted(unknown)}")

    def get(self, code: str) -> IncidentType:
        try:
            return self.types[code]
        except KeyError:
            raise UnknownIncidentType(f"no incident type {code!r}") from None

    def for_alarm(self, category: str, alarm_priority: int) -> tuple[IncidentType, IncidentPriority]:
        """The type an alarm category becomes, and its priority: the more urgent of the two.

        A life-safety alarm (alarm priority 1) is always P1, whatever its type's default.
        """
        kind = self.types[self.by_alarm_category.get(category, self.fallback_type)]
        alarm = IncidentPriority(min(max(alarm_priority, 1), 4))
        return kind, min(kind.default_priority, alarm)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Catalogue:
        """Build from plain data: `{"types": {code: {label, priority, capabilities, p1_capabilities}},
        "alarm_categories": {category: type}, "sources": {source: type}, "fallback": type}`."""
        types = {
            code: IncidentType(
                code=code,
                label=str(spec.get("label", code)),
                default_priority=IncidentPriority(int(spec["priority"])),
                capabilities=frozenset(spec.get("capabilities", ())),
                p1_capabilities=frozenset(spec.get("p1_capabilities", ())),
            )
            for code, spec in data["types"].items()
        }
        return cls(types, dict(data.get("alarm_categories", {})), str(data.get("fallback", "alarm_check")),
                   dict(data.get("sources", {})))


_P1, _P2, _P3 = IncidentPriority.P1, IncidentPriority.P2, IncidentPriority.P3
_SECURITY = frozenset({"security_response"})

DEFAULT_TYPES = (
    IncidentType("panic_alarm", "Panic alarm", _P1, _SECURITY),
    IncidentType("holdup", "Hold-up / robbery", _P1, _SECURITY),
    IncidentType("sos", "Personal SOS", _P1, _SECURITY),
    IncidentType("fire", "Fire", _P1, frozenset({"fire_suppression"})),
    IncidentType("medical", "Medical emergency", _P1, frozenset({"first_aid"}), frozenset({"aed"})),
    IncidentType("burglary", "Burglary / intrusion", _P2, _SECURITY),
    IncidentType("public_order", "Public order disturbance", _P2, _SECURITY),
    IncidentType("traffic_accident", "Traffic accident", _P2, frozenset({"first_aid"}),
                 frozenset({"traffic_control"})),
    IncidentType("gas_leak", "Gas leak", _P2),
    IncidentType("water_leak", "Water leak", _P3),
    IncidentType("alarm_check", "Alarm check (technical or unverified)", _P3),
    IncidentType("welfare_check", "Welfare check", _P3),
)

DEFAULT_CATALOGUE = Catalogue(
    types={t.code: t for t in DEFAULT_TYPES},
    by_alarm_category={
        "panic": "panic_alarm",
        "duress": "panic_alarm",
        "holdup": "holdup",
        "fire": "fire",
        "medical": "medical",
        "burglary": "burglary",
        "tamper": "burglary",
        "gas": "gas_leak",
        "water": "water_leak",
    },
    fallback_type="alarm_check",
    by_source={"sos": "sos"},
)
