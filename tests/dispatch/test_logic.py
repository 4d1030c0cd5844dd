"""Dispatch's pure rules: the state machines (by hypothesis), intervals, catalogue, ranking, statistics."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from safecity.alarms.taxonomy import AlarmCategory
from safecity.dispatch import logic, statistics
from safecity.dispatch.catalogue import DEFAULT_CATALOGUE, UNIT_KINDS, Catalogue
from safecity.dispatch.logic import (
    INCIDENT_TRANSITIONS,
    UNIT_TRANSITIONS,
    Actor,
    Assignment,
    AssignmentStatus,
    DispatchError,
    DispatchStateError,
    Incident,
    IncidentPriority,
    IncidentStatus,
    NotYourUnit,
    UnitState,
    UnitStatus,
    UnitUnavailable,
)
from safecity.dispatch.recommend import Candidate, PositionSource, auto_assignee, is_stale, rank_units

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def unit(uid: str = "RRG-1", status: UnitStatus = UnitStatus.AVAILABLE, *, on_shift: bool = True) -> UnitState:
    return UnitState(uid, status, on_shift)


def fresh_incident(priority: IncidentPriority = IncidentPriority.P1) -> Incident:
    return logic.new_incident("i1", "panic_alarm", priority, T0, "olga")


# -- the lifecycle, step by step -----------------------------------------------------------------


def test_a_panic_incident_runs_its_whole_lifecycle_with_every_interval() -> None:
    incident = fresh_incident()
    sent = logic.assign(incident, unit(), at(45), "dina")
    assert sent.incident.status is IncidentStatus.DISPATCHED
    assert (sent.incident.dispatched_at, sent.incident.dispatched_by) == (at(45), "dina")
    assert sent.unit == UnitState("RRG-1", UnitStatus.DISPATCHED, True, "i1")

    acked = logic.acknowledge(sent.assignment, at(50))
    rolling = logic.report_status(sent.unit, UnitStatus.EN_ROUTE, at(75), "crew", assignment=acked,
                                  incident=sent.incident)
    arrived = logic.report_status(rolling.unit, UnitStatus.ON_SCENE, at(315), "crew",
                                  assignment=rolling.assignment, incident=rolling.incident)
    cleared = logic.report_status(arrived.unit, UnitStatus.RETURNING, at(1215), "crew",
                                  assignment=arrived.assignment, incident=arrived.incident)
    done = cleared.incident
    assert done is not None and cleared.assignment is not None
    assert done.status is IncidentStatus.CLOSED
    assert (done.cleared_by, done.closed_by) == ("crew", "crew")
    assert cleared.unit == UnitState("RRG-1", UnitStatus.RETURNING, True, None)
    assert cleared.assignment.status is AssignmentStatus.CLEARED
    assert logic.incident_intervals(done) == logic.ResponseIntervals(
        call_processing_s=45, turnout_s=30, travel_s=240, on_scene_s=900, total_response_s=315)


def test_a_second_unit_reaching_a_passed_milestone_leaves_the_incident_alone() -> None:
    first = logic.assign(fresh_incident(), unit("A"), at(10), "dina")
    on_scene = logic.report_status(first.unit, UnitStatus.ON_SCENE, at(100), "a", assignment=first.assignment,
                                   incident=first.incident)
    assert on_scene.incident is not None
    second = logic.assign(on_scene.incident, unit("B"), at(120), "dina")
    assert second.incident == on_scene.incident
    rolling = logic.report_status(second.unit, UnitStatus.EN_ROUTE, at(130), "b", assignment=second.assignment,
                                  incident=second.incident)
    assert rolling.incident == on_scene.incident and not rolling.incident_changed
    # A clears while B still drives: the incident stays open for B
    a_clears = logic.report_status(on_scene.unit, UnitStatus.AVAILABLE, at(200), "a",
                                   assignment=on_scene.assignment, incident=rolling.incident, others_active=1)
    assert a_clears.incident is not None and a_clears.incident.status is IncidentStatus.ON_SCENE


def test_a_unit_enters_dispatched_only_by_assignment() -> None:
    with pytest.raises(DispatchStateError, match="assigning"):
        logic.report_status(unit(), UnitStatus.DISPATCHED, T0, "crew")


def test_a_busy_or_off_shift_unit_cannot_be_assigned() -> None:
    with pytest.raises(UnitUnavailable):
        logic.assign(fresh_incident(), unit(status=UnitStatus.EN_ROUTE), T0, "dina")
    with pytest.raises(UnitUnavailable):
        logic.assign(fresh_incident(), unit(on_shift=False), T0, "dina")
    with pytest.raises(UnitUnavailable):
        logic.assign(fresh_incident(), unit(status=UnitStatus.OUT_OF_SERVICE), T0, "dina")
    # a returning crew is back in service
    assert logic.assign(fresh_incident(), unit(status=UnitStatus.RETURNING), T0, "dina").unit.status is \
        UnitStatus.DISPATCHED


def test_closing_needs_a_unit_on_scene_and_cancelling_stands_units_down() -> None:
    sent = logic.assign(fresh_incident(), unit(), at(10), "dina")
    with pytest.raises(DispatchStateError):
        logic.close_incident(sent.incident, at(20), "dina")
    cancelled = logic.cancel_incident(sent.incident, at(20), "dina")
    assert cancelled.status is IncidentStatus.CANCELLED and cancelled.closed_at == at(20)
    [released] = logic.release_units(cancelled, [(sent.unit, sent.assignment)], at(20))
    assert released.unit.status is UnitStatus.AVAILABLE and released.unit.incident_id is None
    assert released.assignment.status is AssignmentStatus.CANCELLED
    with pytest.raises(DispatchStateError):
        logic.assign(cancelled, unit("B"), at(30), "dina")


def test_a_clock_running_backwards_never_gives_negative_intervals() -> None:
    sent = logic.assign(fresh_incident(), unit(), at(100), "dina")
    late = logic.report_status(sent.unit, UnitStatus.ON_SCENE, at(50), "crew", assignment=sent.assignment,
                               incident=sent.incident)
    assert late.incident is not None
    intervals = logic.incident_intervals(late.incident)
    assert intervals.total_response_s == 100 and intervals.travel_s is None


def test_going_off_shift_with_a_job_is_refused() -> None:
    with pytest.raises(DispatchStateError):
        logic.set_shift(unit(status=UnitStatus.ON_SCENE), False)
    assert logic.set_shift(unit(status=UnitStatus.OUT_OF_SERVICE, on_shift=False), True).status is \
        UnitStatus.AVAILABLE


def test_a_crew_speaks_only_for_its_own_unit() -> None:
    logic.check_crew(Actor("tab", "field_unit", "RRG-1"), "RRG-1")
    logic.check_crew(Actor("dina", "dispatcher"), "RRG-2")
    with pytest.raises(NotYourUnit):
        logic.check_crew(Actor("tab", "field_unit", "RRG-1"), "RRG-2")


def test_every_status_has_a_row_in_its_transition_table() -> None:
    assert set(INCIDENT_TRANSITIONS) == set(IncidentStatus)
    assert set(UNIT_TRANSITIONS) == set(UnitStatus)
    # every move out of a committed status says what happens to the assignment
    for status in logic.COMMITTED:
        for to in UNIT_TRANSITIONS[status]:
            assert (status, to) in logic.STATUS_EFFECTS, (status, to)


# -- the state machines under random command sequences -----------------------------------------------

UNITS = ("A", "B", "C")
STATUSES = st.sampled_from([s for s in UnitStatus])


class DispatchBoard(RuleBasedStateMachine):
    """Incidents and units driven by random commands, the way the service applies the pure rules.

    A refused command must leave everything as it was; whatever is accepted must keep the invariants.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.incidents: dict[str, Incident] = {}
        self.units = {u: UnitState(u, UnitStatus.AVAILABLE, True) for u in UNITS}
        self.assignments: list[Assignment] = []

    def _active(self, unit_id: str) -> Assignment | None:
        found = [a for a in self.assignments if a.unit_id == unit_id and a.active]
        return found[0] if found else None

    def _replace_assignment(self, old: Assignment, new: Assignment) -> None:
        self.assignments[self.assignments.index(old)] = new

    @rule(seconds=st.integers(min_value=-30, max_value=600))
    def tick(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)  # the clock may step back: another process, NTP

    @precondition(lambda self: len(self.incidents) < 4)
    @rule(priority=st.sampled_from(list(IncidentPriority)))
    def create(self, priority: IncidentPriority) -> None:
        incident_id = f"i{len(self.incidents)}"
        self.incidents[incident_id] = logic.new_incident(incident_id, "burglary", priority, self.now, "dina")

    @precondition(lambda self: bool(self.incidents))
    @rule(data=st.data(), unit_id=st.sampled_from(UNITS))
    def assign(self, data: st.DataObject, unit_id: str) -> None:
        incident_id = data.draw(st.sampled_from(sorted(self.incidents)))
        try:
            done = logic.assign(self.incidents[incident_id], self.units[unit_id], self.now, "dina")
        except DispatchError:
            return
        self.incidents[incident_id], self.units[unit_id] = done.incident, done.unit
        self.assignments.append(done.assignment)

    @rule(unit_id=st.sampled_from(UNITS), data=st.data())
    def report_a_plausible_status(self, unit_id: str, data: st.DataObject) -> None:
        allowed = sorted(UNIT_TRANSITIONS[self.units[unit_id].status] - logic.ASSIGNMENT_ONLY)
        if allowed:
            self.report(unit_id, data.draw(st.sampled_from(allowed)))

    @rule(unit_id=st.sampled_from(UNITS), to=STATUSES)
    def report(self, unit_id: str, to: UnitStatus) -> None:
        current = self.units[unit_id]
        assignment = self._active(unit_id)
        incident = self.incidents[current.incident_id] if current.incident_id else None
        others = sum(1 for a in self.assignments if a.active and incident is not None
                     and a.incident_id == incident.id and a.unit_id != unit_id)
        try:
            done = logic.report_status(current, to, self.now, "crew", assignment=assignment, incident=incident,
                                       others_active=others)
        except DispatchError:
            return
        self.units[unit_id] = done.unit
        if done.assignment is not None and assignment is not None:
            self._replace_assignment(assignment, done.assignment)
        if done.incident is not None:
            self.incidents[done.incident.id] = done.incident

    @rule(unit_id=st.sampled_from(UNITS))
    def acknowledge(self, unit_id: str) -> None:
        assignment = self._active(unit_id)
        if assignment is not None:
            self._replace_assignment(assignment, logic.acknowledge(assignment, self.now))

    @precondition(lambda self: bool(self.incidents))
    @rule(data=st.data(), cancel=st.sampled_from([False, False, True]))
    def finish(self, data: st.DataObject, cancel: bool) -> None:
        incident_id = data.draw(st.sampled_from(sorted(self.incidents)))
        decide = logic.cancel_incident if cancel else logic.close_incident
        try:
            finished = decide(self.incidents[incident_id], self.now, "dina")
        except DispatchError:
            return
        self.incidents[incident_id] = finished
        active = [a for a in self.assignments if a.active and a.incident_id == incident_id]
        for released, old in zip(logic.release_units(finished, [(self.units[a.unit_id], a) for a in active],
                                                     self.now), active, strict=True):
            self.units[released.unit.id] = released.unit
            self._replace_assignment(old, released.assignment)

    @invariant()
    def units_and_assignments_agree(self) -> None:
        for unit_id, state in self.units.items():
            active = [a for a in self.assignments if a.unit_id == unit_id and a.active]
            assert len(active) <= 1
            if state.status in logic.COMMITTED:
                assert len(active) == 1 and state.incident_id == active[0].incident_id
                assert self.incidents[active[0].incident_id].is_open
            else:
                assert not active and state.incident_id is None

    @invariant()
    def incidents_are_consistent(self) -> None:
        for incident in self.incidents.values():
            stamps = [incident.created_at, incident.dispatched_at, incident.en_route_at, incident.on_scene_at,
                      incident.cleared_at, incident.closed_at]
            present = [s for s in stamps if s is not None]
            assert present == sorted(present)
            status = incident.status
            if status is IncidentStatus.NEW:
                assert incident.dispatched_at is None
            elif status is not IncidentStatus.CANCELLED:
                assert incident.dispatched_at is not None
            if status in (IncidentStatus.ON_SCENE, IncidentStatus.CLOSED):
                assert incident.on_scene_at is not None
            if status is IncidentStatus.CLOSED:
                assert incident.cleared_at is not None and incident.closed_at is not None
            if status is IncidentStatus.CANCELLED:
                assert incident.closed_at is not None and incident.on_scene_at is None
            if not incident.is_open:
                assert not [a for a in self.assignments if a.active and a.incident_id == incident.id]
            intervals = logic.incident_intervals(incident)
            values = [getattr(intervals, n) for n in logic.INTERVAL_NAMES]
            assert all(v is None or v >= 0 for v in values)
            parts = (intervals.call_processing_s, intervals.turnout_s, intervals.travel_s)
            if intervals.total_response_s is not None and None not in parts:
                assert sum(p for p in parts if p is not None) == pytest.approx(intervals.total_response_s)

    @invariant()
    def assignment_milestones_are_ordered(self) -> None:
        for a in self.assignments:
            present = [s for s in (a.assigned_at, a.en_route_at, a.on_scene_at, a.cleared_at) if s is not None]
            assert present == sorted(present)
            if a.acknowledged_at is not None:
                assert a.acknowledged_at >= a.assigned_at


TestDispatchBoard = DispatchBoard.TestCase
TestDispatchBoard.settings = settings(max_examples=80, stateful_step_count=30, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])


# -- the catalogue ---------------------------------------------------------------------------------


def test_every_alarm_category_becomes_some_incident_type() -> None:
    for category in AlarmCategory:
        kind, priority = DEFAULT_CATALOGUE.for_alarm(category.value, 3)
        assert kind.code in DEFAULT_CATALOGUE.types
        assert priority <= kind.default_priority


def test_life_safety_alarms_are_p1_and_burglary_is_p2() -> None:
    assert DEFAULT_CATALOGUE.for_alarm("panic", 1)[0].code == "panic_alarm"
    assert DEFAULT_CATALOGUE.for_alarm("panic", 1)[1] is IncidentPriority.P1
    assert DEFAULT_CATALOGUE.for_alarm("burglary", 2) == (DEFAULT_CATALOGUE.types["burglary"], IncidentPriority.P2)
    # an alarm the centre marks life safety is P1 whatever the type's default
    assert DEFAULT_CATALOGUE.for_alarm("auxiliary", 1)[1] is IncidentPriority.P1


def test_a_p1_medical_call_needs_a_defibrillator() -> None:
    medical = DEFAULT_CATALOGUE.get("medical")
    assert medical.required(IncidentPriority.P1) == {"first_aid", "aed"}
    assert medical.required(IncidentPriority.P2) == {"first_aid"}


def test_a_catalogue_comes_from_plain_data_and_refuses_dangling_types() -> None:
    catalogue = Catalogue.from_mapping({
        "types": {"riot": {"label": "Riot", "priority": 1, "capabilities": ["security_response"]},
                  "check": {"priority": 3}},
        "alarm_categories": {"panic": "riot"}, "fallback": "check",
    })
    assert catalogue.for_alarm("panic", 2)[0].code == "riot"
    assert catalogue.for_alarm("fire", 2)[0].code == "check"
    with pytest.raises(logic.UnknownIncidentType):
        Catalogue.from_mapping({"types": {"check": {"priority": 3}}, "alarm_categories": {"panic": "riot"},
                                "fallback": "check"})
    with pytest.raises(logic.UnknownIncidentType):
        DEFAULT_CATALOGUE.get("alien_landing")


def test_drones_are_not_routed_by_road() -> None:
    assert not UNIT_KINDS["drone"].by_road
    assert all(kind.by_road for code, kind in UNIT_KINDS.items() if code != "drone")


# -- recommendation ranking ------------------------------------------------------------------------

SECURITY = frozenset({"security_response"})


def candidate(uid: str, eta: float | None, **kw: object) -> Candidate:
    base = Candidate(uid, "rapid_response_group", UnitStatus.AVAILABLE, True, SECURITY, eta, stale=False)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_ranking_is_by_travel_time_among_qualified_fresh_units() -> None:
    ranked = rank_units([candidate("far", 300), candidate("near", 120), candidate("mid", 200)], SECURITY, 2)
    assert [(r.rank, r.unit_id, r.eta_s) for r in ranked] == [(1, "near", 120), (2, "mid", 200)]


def test_ineligible_units_are_left_out() -> None:
    ranked = rank_units([
        candidate("busy", 10, status=UnitStatus.EN_ROUTE), candidate("home", 20, on_shift=False),
        candidate("unreachable", None), candidate("ok", 500), candidate("oos", 5, status=UnitStatus.OUT_OF_SERVICE),
    ], SECURITY, 5)
    assert [r.unit_id for r in ranked] == ["ok"]


def test_lacking_capabilities_and_stale_fixes_rank_after_qualified_fresh_units() -> None:
    ranked = rank_units([
        candidate("nearest_but_lacking", 30, capabilities=frozenset({"first_aid"})),
        candidate("stale", 40, stale=True), candidate("fresh", 400),
        candidate("at_home", 60, position_source=PositionSource.HOME),
    ], SECURITY, 4)
    assert [r.unit_id for r in ranked] == ["fresh", "at_home", "stale", "nearest_but_lacking"]
    assert ranked[-1].missing == SECURITY


def test_only_a_p1_is_auto_assigned_and_only_to_a_qualified_fresh_unit() -> None:
    ranked = rank_units([candidate("stale", 10, stale=True), candidate("ok", 90)], SECURITY, 3)
    best = auto_assignee(ranked, IncidentPriority.P1)
    assert best is not None and best.unit_id == "ok"
    assert auto_assignee(ranked, IncidentPriority.P2) is None
    lacking = rank_units([candidate("x", 10, capabilities=frozenset())], SECURITY, 3)
    assert auto_assignee(lacking, IncidentPriority.P1) is None


def test_staleness_is_measured_from_the_last_fix() -> None:
    assert not is_stale(None, T0, timedelta(seconds=60))
    assert not is_stale(at(-60), T0, timedelta(seconds=60))
    assert is_stale(at(-61), T0, timedelta(seconds=60))


# -- statistics ------------------------------------------------------------------------------------


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 11)]
    assert statistics.percentile(values, 50) == 5
    assert statistics.percentile(values, 90) == 9
    assert statistics.percentile([7.0], 90) == 7
    assert statistics.percentile([], 50) is None


def test_compliance_counts_p1_incidents_within_each_threshold() -> None:
    def times(cp: float, priority: IncidentPriority = IncidentPriority.P1) -> statistics.IncidentTimes:
        created = T0
        incident = replace(fresh_incident(priority), status=IncidentStatus.DISPATCHED, dispatched_at=at(cp))
        assert incident.created_at == created
        return statistics.IncidentTimes.of(incident, "Kamppi")

    data = [times(30), times(55), times(61), times(95), times(10, IncidentPriority.P2)]
    targets = [statistics.ComplianceTarget("60", IncidentPriority.P1, "call_processing_s", 60, 0.9),
               statistics.ComplianceTarget("90", IncidentPriority.P1, "call_processing_s", 90, 0.5)]
    sixty, ninety = statistics.compliance(data, targets)
    assert (sixty.incidents, sixty.within, sixty.achieved, sixty.met) == (4, 2, 0.5, False)
    assert (ninety.within, ninety.achieved, ninety.met) == (3, 0.75, True)
    with pytest.raises(ValueError):
        statistics.ComplianceTarget("bad", IncidentPriority.P1, "lunch_break_s", 60, 0.9)
