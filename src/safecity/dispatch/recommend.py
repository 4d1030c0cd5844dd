"""Pure recommendation: which units to send, best first, given their travel times.

The travel times come from the road graph (`geo.routing`), computed by the service; here only the
rules: who may be sent at all, in what order, and when a P1 may be assigned without a dispatcher.
The order is a sort key, so the whole policy reads in one place (`_rank_key`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from safecity.dispatch.logic import ASSIGNABLE, IncidentPriority, UnitStatus


class PositionSource(StrEnum):
    GPS = "gps"  # the unit's last fix
    HOME = "home"  # no fix yet: its home station


@dataclass(frozen=True, slots=True)
class Candidate:
    unit_id: str
    kind: str
    status: UnitStatus
    on_shift: bool
    capabilities: frozenset[str]
    eta_s: float | None
    """Travel time by road from the unit's position to the incident; None = unreachable or not computed."""
    stale: bool
    position_source: PositionSource = PositionSource.GPS


@dataclass(frozen=True, slots=True)
class Recommendation:
    rank: int
    unit_id: str
    kind: str
    status: UnitStatus
    eta_s: float
    stale: bool
    missing: frozenset[str]
    position_source: PositionSource

    @property
    def fully_qualified(self) -> bool:
        return not self.missing


def eligible(candidate: Candidate) -> bool:
    """May be sent now: on shift, free (available or returning) and reachable by road."""
    return candidate.on_shift and candidate.status in ASSIGNABLE and candidate.eta_s is not None


def tier(candidate: Candidate, required: frozenset[str]) -> tuple[bool, bool, bool]:
    """The part of the rank that does not depend on travel time (see `_rank_key`): the service
    searches the road graph tier by tier and stops once it has k units, instead of timing every unit."""
    return (
        bool(required - candidate.capabilities),
        candidate.stale,
        candidate.position_source is not PositionSource.GPS,
    )


def _rank_key(candidate: Candidate, required: frozenset[str]) -> tuple[bool, bool, bool, float, str]:
    # 1. units that bring every required capability before those that lack some (still shown:
    #    the dispatcher may send the nearest crew while the specialist is on the way);
    # 2. a unit whose position is known now before one whose last fix is stale;
    # 3. a unit with a GPS fix before one placed at its home station;
    # 4. the shortest travel time; the unit id makes the order total.
    assert candidate.eta_s is not None
    return (*tier(candidate, required), candidate.eta_s, candidate.unit_id)


def rank_units(candidates: Iterable[Candidate], required: frozenset[str], k: int) -> list[Recommendation]:
    """The best `k` eligible units, best first, each with its ETA and what it lacks."""
    ordered = sorted((c for c in candidates if eligible(c)), key=lambda c: _rank_key(c, required))
    out: list[Recommendation] = []
    for rank, c in enumerate(ordered[: max(k, 0)], start=1):
        assert c.eta_s is not None
        out.append(Recommendation(rank, c.unit_id, c.kind, c.status, c.eta_s, c.stale,
                                  required - c.capabilities, c.position_source))
    return out


def auto_assignee(recommendations: Iterable[Recommendation], priority: IncidentPriority) -> Recommendation | None:
    """The unit a P1 may be given without waiting for a dispatcher: the first one that is fully
    qualified and whose position is known now. Anything less is left to a person."""
    if priority is not IncidentPriority.P1:
        return None
    for rec in recommendations:
        if rec.fully_qualified and not rec.stale and rec.position_source is PositionSource.GPS:
            return rec
    return None


def is_stale(last_fix_at: datetime | None, now: datetime, max_age: timedelta) -> bool:
    """No fix for longer than `max_age`: the unit's position can no longer be trusted.

    A unit that never sent a fix is not stale: it is placed at its home station and ranked as such.
    """
    return last_fix_at is not None and now - last_fix_at > max_age
