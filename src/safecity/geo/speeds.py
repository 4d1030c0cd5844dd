"""Which OSM ways a car may drive, in which direction, and how fast: tag semantics as data tables.

The rules follow the OpenStreetMap wiki (`highway=*`, `oneway=*`, `maxspeed=*`, `access=*`): the most specific
access tag wins (`motorcar` over `motor_vehicle` over `vehicle` over `access`), `junction=roundabout` and
motorways imply one-way unless `oneway=no` says otherwise, and a `maxspeed` we cannot read falls back to a
per-class default. Turn restrictions and turn costs are not modelled anywhere in `geo/`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

MPH_KMH = 1.609344
KNOT_KMH = 1.852
WALK_KMH = 7.0
"""`maxspeed=walk`: walking pace, what German and Austrian law means by Schrittgeschwindigkeit."""
NO_LIMIT = math.inf
"""`maxspeed=none`: no posted limit; the way then drives at its class default."""

DEFAULT_SPEEDS_KMH: Mapping[str, float] = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 60.0,
    "primary_link": 40.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 40.0,
    "tertiary_link": 30.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "living_street": 10.0,
    "service": 15.0,
}
"""Drivable `highway` classes and the speed driven where no usable `maxspeed` is tagged.

Classes absent here (footway, path, cycleway, steps, pedestrian, track, bridleway, construction…) are not
driven; add `"track": 15.0` to a profile to allow tracks.
"""

ZONE_SPEEDS_KMH: Mapping[str, float] = {
    "urban": 50.0,
    "rural": 90.0,
    "trunk": 100.0,
    "motorway": 120.0,
    "living_street": 20.0,
    "walk": WALK_KMH,
    "school": 30.0,
    "bicycle_road": 30.0,
}
"""Implicit limits `CC:zone` when the country is not in `COUNTRY_ZONE_SPEEDS_KMH` (a common European value)."""

COUNTRY_ZONE_SPEEDS_KMH: Mapping[str, float] = {
    "AT:urban": 50.0, "AT:rural": 100.0, "AT:trunk": 100.0, "AT:motorway": 130.0,
    "BE:urban": 50.0, "BE:rural": 70.0, "BE:motorway": 120.0,
    "CH:urban": 50.0, "CH:rural": 80.0, "CH:trunk": 100.0, "CH:motorway": 120.0,
    "CZ:urban": 50.0, "CZ:rural": 90.0, "CZ:motorway": 130.0,
    "DE:urban": 50.0, "DE:rural": 100.0, "DE:trunk": NO_LIMIT, "DE:motorway": NO_LIMIT, "DE:living_street": WALK_KMH,
    "DK:urban": 50.0, "DK:rural": 80.0, "DK:motorway": 130.0,
    "EE:urban": 50.0, "EE:rural": 90.0,
    "ES:urban": 50.0, "ES:rural": 90.0, "ES:motorway": 120.0,
    "FI:urban": 50.0, "FI:rural": 80.0, "FI:motorway": 120.0,
    "FR:urban": 50.0, "FR:rural": 80.0, "FR:trunk": 110.0, "FR:motorway": 130.0,
    "GB:nsl_single": 60 * MPH_KMH, "GB:nsl_dual": 70 * MPH_KMH, "GB:motorway": 70 * MPH_KMH,
    "GB:urban": 30 * MPH_KMH,
    "IT:urban": 50.0, "IT:rural": 90.0, "IT:trunk": 110.0, "IT:motorway": 130.0,
    "NL:urban": 50.0, "NL:rural": 80.0, "NL:trunk": 100.0, "NL:motorway": 130.0,
    "NO:urban": 50.0, "NO:rural": 80.0, "NO:motorway": 110.0,
    "PL:urban": 50.0, "PL:rural": 90.0, "PL:trunk": 120.0, "PL:motorway": 140.0,
    "RU:urban": 60.0, "RU:rural": 90.0, "RU:motorway": 110.0, "RU:living_street": 20.0,
    "SE:urban": 50.0, "SE:rural": 70.0, "SE:motorway": 110.0,
    "UA:urban": 50.0, "UA:rural": 90.0, "UA:trunk": 110.0, "UA:motorway": 130.0,
}  # fmt: skip
"""Country-specific implicit limits (`maxspeed=RU:urban` and friends; `maxspeed:type` uses the same codes)."""

_NUMBER = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$", re.IGNORECASE)
_ZONE = re.compile(r"^([A-Z]{2}):(?:zone:?)?(\d+)$", re.IGNORECASE)
_UNIT_KMH = {None: 1.0, "km/h": 1.0, "kmh": 1.0, "kph": 1.0, "mph": MPH_KMH, "knots": KNOT_KMH}
_DENIED = frozenset({"no", "private"})
_ACCESS_KEYS = ("motorcar", "motor_vehicle", "vehicle", "access")
"""Most specific first: the first of these that is tagged decides."""


def parse_maxspeed(value: str | None) -> float | None:
    """A `maxspeed` value in km/h; `NO_LIMIT` for "none"; None when it says nothing usable.

    Accepts "50", "50 km/h", "30 mph", "RU:urban", "DE:zone30", "walk", "none"; of "50;30" the first value.
    "signals", "variable" and garbage give None, so the caller falls back to the class default.
    """
    if value is None:
        return None
    text = value.split(";")[0].strip()
    if not text:
        return None
    lowered = text.lower()
    if lowered in ("none", "unlimited"):
        return NO_LIMIT
    if lowered == "walk":
        return WALK_KMH
    number = _NUMBER.match(text)
    if number:
        kmh = float(number.group(1).replace(",", ".")) * _UNIT_KMH[(number.group(2) or "").lower() or None]
        return kmh if kmh > 0 else None
    zone = _ZONE.match(text)
    if zone:
        return float(zone.group(2)) or None
    if ":" in text:
        country, _, kind = text.partition(":")
        key = f"{country.upper()}:{kind.lower()}"
        if key in COUNTRY_ZONE_SPEEDS_KMH:
            return COUNTRY_ZONE_SPEEDS_KMH[key]
        return ZONE_SPEEDS_KMH.get(kind.lower())
    return None


@dataclass(frozen=True)
class DrivingProfile:
    """What a rapid-response car may drive and how fast; the defaults follow a civilian car on posted limits.

    `speed_factor` scales every speed (posted limits are rarely what traffic allows; lights and sirens
    sometimes beat them): keep it at 1.0 to reproduce posted-limit travel times.
    """

    speeds_kmh: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SPEEDS_KMH))
    implied_oneway: frozenset[str] = frozenset({"motorway"})
    denied_access: frozenset[str] = _DENIED
    speed_factor: float = 1.0
    min_speed_kmh: float = 3.0

    def highway_class(self, tags: Mapping[str, str]) -> str | None:
        """The drivable class of a way, or None when the way is not for cars (or is an area)."""
        highway = tags.get("highway")
        if highway is None or highway not in self.speeds_kmh:
            return None
        if tags.get("area") == "yes":
            return None
        for key in _ACCESS_KEYS:
            value = tags.get(key)
            if value is not None:
                return None if value.strip().lower() in self.denied_access else highway
        return highway

    def directions(self, tags: Mapping[str, str], highway: str) -> tuple[bool, bool]:
        """(forward, backward) along the way's node order; `oneway=reversible` ways are not driven at all."""
        oneway = (tags.get("oneway") or "").strip().lower()
        if oneway in ("yes", "1", "true"):
            return True, False
        if oneway in ("-1", "reverse"):
            return False, True
        if oneway == "reversible":
            return False, False
        if oneway in ("no", "false", "0", "alternating"):
            return True, True
        if tags.get("junction") in ("roundabout", "circular") or highway in self.implied_oneway:
            return True, False
        return True, True

    def speeds(self, tags: Mapping[str, str], highway: str) -> tuple[float, float]:
        """(forward, backward) km/h: `maxspeed:forward`/`:backward`, else `maxspeed`, else the class default."""
        default = self.speeds_kmh[highway]
        common = parse_maxspeed(tags.get("maxspeed"))
        result = []
        for direction in ("forward", "backward"):
            kmh = parse_maxspeed(tags.get(f"maxspeed:{direction}"))
            kmh = common if kmh is None else kmh
            if kmh is None or math.isinf(kmh):
                kmh = default
            result.append(max(self.min_speed_kmh, kmh * self.speed_factor))
        return result[0], result[1]


DEFAULT_PROFILE = DrivingProfile()
