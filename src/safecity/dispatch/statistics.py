"""Response-interval statistics: percentiles per priority, district and unit, and a compliance table.

Pure: the service queries the incidents and assignments and hands them here as values. Percentiles
are nearest-rank (the "fractile" NFPA 1710 reports: the time within which 90 % of responses fell,
always an observed value). Compliance targets are data, NFPA 1221/1710 style: "P1 call processing
within 60 s for 90 % of incidents"; a deployment passes its own.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from safecity.dispatch.logic import (
    INTERVAL_NAMES,
    Assignment,
    Incident,
    IncidentPriority,
    ResponseIntervals,
    assignment_intervals,
    incident_intervals,
)

PERCENTILES = (50, 90)
UNKNOWN_DISTRICT = "unknown"


@dataclass(frozen=True, slots=True)
class IncidentTimes:
    priority: IncidentPriority
    district: str
    intervals: ResponseIntervals

    @classmethod
    def of(cls, incident: Incident, district: str | None) -> IncidentTimes:
        return cls(incident.priority, district or UNKNOWN_DISTRICT, incident_intervals(incident))


@dataclass(frozen=True, slots=True)
class UnitTimes:
    unit_id: str
    assignment: Assignment
    incident_created_at: datetime

    @property
    def intervals(self) -> ResponseIntervals:
        return assignment_intervals(self.assignment, self.incident_created_at)


@dataclass(frozen=True, slots=True)
class ComplianceTarget:
    """`share` of `priority` incidents must have `interval` within `limit_s` seconds."""

    name: str
    priority: IncidentPriority
    interval: str  # one of logic.INTERVAL_NAMES
    limit_s: float
    share: float

    def __post_init__(self) -> None:
        if self.interval not in INTERVAL_NAMES:
            raise ValueError(f"unknown interval {self.interval!r}")


DEFAULT_TARGETS: tuple[ComplianceTarget, ...] = (
    # NFPA 1221 (alarm processing at the communications centre)
    ComplianceTarget("P1 call processing ≤ 60 s (90 %)", IncidentPriority.P1, "call_processing_s", 60, 0.90),
    ComplianceTarget("P1 call processing ≤ 90 s (99 %)", IncidentPriority.P1, "call_processing_s", 90, 0.99),
    # NFPA 1710 (turnout and travel of the first-arriving unit)
    ComplianceTarget("P1 turnout ≤ 80 s (90 %)", IncidentPriority.P1, "turnout_s", 80, 0.90),
    ComplianceTarget("P1 travel ≤ 240 s (90 %)", IncidentPriority.P1, "travel_s", 240, 0.90),
    ComplianceTarget("P1 total response ≤ 480 s (90 %)", IncidentPriority.P1, "total_response_s", 480, 0.90),
    ComplianceTarget("P2 total response ≤ 900 s (90 %)", IncidentPriority.P2, "total_response_s", 900, 0.90),
)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest observed value with at least p % of values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class IntervalSummary:
    count: int
    p50: float | None
    p90: float | None


def summarize(values: Sequence[float]) -> IntervalSummary:
    return IntervalSummary(len(values), percentile(values, 50), percentile(values, 90))


@dataclass(frozen=True, slots=True)
class GroupSummary:
    group: str
    incidents: int
    intervals: dict[str, IntervalSummary]


def _group(key_and_intervals: Iterable[tuple[str, ResponseIntervals]]) -> list[GroupSummary]:
    collected: dict[str, dict[str, list[float]]] = defaultdict(lambda: {name: [] for name in INTERVAL_NAMES})
    counts: dict[str, int] = defaultdict(int)
    for key, intervals in key_and_intervals:
        counts[key] += 1
        bucket = collected[key]
        for name in INTERVAL_NAMES:
            value = getattr(intervals, name)
            if value is not None:
                bucket[name].append(value)
    return [GroupSummary(key, counts[key], {name: summarize(v) for name, v in collected[key].items()})
            for key in sorted(collected)]


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    target: ComplianceTarget
    incidents: int  # incidents of that priority with the interval measured
    within: int
    achieved: float | None
    met: bool | None


def compliance(times: Sequence[IncidentTimes], targets: Iterable[ComplianceTarget]) -> list[ComplianceRow]:
    rows = []
    for target in targets:
        values = [v for t in times if t.priority is target.priority
                  and (v := getattr(t.intervals, target.interval)) is not None]
        within = sum(1 for v in values if v <= target.limit_s)
        achieved = within / len(values) if values else None
        rows.append(ComplianceRow(target, len(values), within, achieved,
                                  None if achieved is None else achieved >= target.share))
    return rows


@dataclass(frozen=True, slots=True)
class Report:
    incidents: int
    by_priority: list[GroupSummary]
    by_district: list[GroupSummary]
    by_unit: list[GroupSummary]
    compliance: list[ComplianceRow] = field(default_factory=list)


def report(
    incidents: Sequence[IncidentTimes], units: Sequence[UnitTimes], targets: Iterable[ComplianceTarget]
) -> Report:
    return Report(
        incidents=len(incidents),
        by_priority=_group((f"P{int(t.priority)}", t.intervals) for t in incidents),
        by_district=_group((t.district, t.intervals) for t in incidents),
        by_unit=_group((u.unit_id, u.intervals) for u in units),
        compliance=compliance(incidents, targets),
    )
