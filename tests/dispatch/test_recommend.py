"""Recommendation on the real Helsinki road graph: by road travel time, exactly, not by straight line."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.bus.sqlite import SqliteEventLog
from safecity.dispatch.logic import Actor, IncidentPriority, UnitStatus
from safecity.dispatch.recommend import Candidate, rank_units
from safecity.dispatch.service import DispatchService
from safecity.dispatch.travel import SnapCache, road_etas
from safecity.geo.coords import haversine_m
from safecity.geo.graph import RoadGraph
from safecity.geo.routing import Snap, plain_dijkstra, snap
from safecity.geo.snapping import same_edge_seconds
from safecity.security.audit import AuditLog
from safecity.store.engine import create_database
from safecity.store.migrate import upgrade
from tests.dispatch.conftest import Clock

STOCKMANN = (60.1686, 24.9416)  # the incident
ATENEUM = (60.1703, 24.9443)  # 241 m away as the crow flies, but over two minutes by road
ESPLANADI = (60.1676, 24.9470)  # 319 m away, under a minute by road


def brute_force_seconds(graph: RoadGraph, source: Snap, target: Snap) -> float:
    """Travel time by textbook Dijkstra between every way off the source and every way onto the target."""
    best = same_edge_seconds(graph, source, target)
    for leaving in source.exits:
        for arriving in target.entries:
            between = plain_dijkstra(graph, leaving.node, arriving.node)
            best = min(best, leaving.seconds + between + arriving.seconds)
    return best


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_etas_and_ranking_equal_brute_force_over_plain_dijkstra(helsinki: RoadGraph, data: st.DataObject) -> None:
    box = helsinki.bounding_box()
    point = st.tuples(st.floats(box.south, box.north), st.floats(box.west, box.east))
    incident = data.draw(point)
    units = data.draw(st.dictionaries(st.sampled_from([f"U{i}" for i in range(40)]), point, min_size=1, max_size=12))
    etas = road_etas(helsinki, SnapCache(), *incident, units)
    target = snap(helsinki, *incident)
    expected = {u: brute_force_seconds(helsinki, snap(helsinki, *p), target) for u, p in units.items()}
    assert etas.seconds.keys() == {u for u, s in expected.items() if s < math.inf}
    for unit_id, seconds in etas.seconds.items():
        assert seconds == pytest.approx(expected[unit_id], abs=1e-6), unit_id

    security = frozenset({"security_response"})
    ranked = rank_units([Candidate(u, "patrol_car", UnitStatus.AVAILABLE, True, security, etas.seconds.get(u),
                                   stale=False) for u in units], security, k=len(units))
    assert [r.eta_s for r in ranked] == sorted(r.eta_s for r in ranked)
    assert [r.eta_s for r in ranked] == pytest.approx(sorted(s for s in expected.values() if s < math.inf))


@pytest.fixture
async def service(tmp_path: Path, helsinki: RoadGraph) -> AsyncIterator[DispatchService]:
    db = create_database(f"sqlite+aiosqlite:///{tmp_path / 'dispatch.db'}")
    await upgrade(db)
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    clock = Clock()

    async def graph() -> RoadGraph:
        return helsinki

    try:
        yield DispatchService(db, log, AuditLog(db, clock), clock, graph)
    finally:
        await log.close()
        await db.close()


async def test_the_nearest_unit_by_road_is_not_the_nearest_as_the_crow_flies(service: DispatchService) -> None:
    supervisor = Actor("sam", "supervisor")
    for unit_id, (lat, lon) in (("RRG-ATENEUM", ATENEUM), ("RRG-ESPLANADI", ESPLANADI)):
        await service.units.create_unit({"id": unit_id, "kind": "rapid_response_group", "home_lat": lat,
                                         "home_lon": lon, "on_shift": True}, supervisor)
    incident = await service.create_incident({"type": "panic_alarm", "lat": STOCKMANN[0], "lon": STOCKMANN[1],
                                              "address": "Aleksanterinkatu 52"}, Actor("dina", "dispatcher"))
    assert incident.priority == IncidentPriority.P1

    crow = {name: haversine_m(*STOCKMANN, *place) for name, place in (("RRG-ATENEUM", ATENEUM),
                                                                       ("RRG-ESPLANADI", ESPLANADI))}
    assert min(crow, key=crow.__getitem__) == "RRG-ATENEUM"

    first, second = await service.recommend(incident.id, k=3)
    assert (first.recommendation.unit_id, second.recommendation.unit_id) == ("RRG-ESPLANADI", "RRG-ATENEUM")
    assert first.recommendation.eta_s < 60 < 120 < second.recommendation.eta_s
    for found in (first, second):
        route = found.route
        assert route is not None and route["geometry"]["type"] == "LineString"
        assert len(route["geometry"]["coordinates"]) >= 2
        assert route["properties"]["seconds"] == pytest.approx(found.recommendation.eta_s, abs=0.01)
        assert route["properties"]["unit_id"] == found.recommendation.unit_id
    # the route ends where the incident is placed on the road, and starts where the unit is
    lon, lat = first.route["geometry"]["coordinates"][-1]  # type: ignore[index]
    assert haversine_m(lat, lon, *STOCKMANN) < 50
    lon, lat = first.route["geometry"]["coordinates"][0]  # type: ignore[index]
    assert haversine_m(lat, lon, *ESPLANADI) < 50


async def test_coverage_reports_the_share_of_roads_free_units_reach(service: DispatchService) -> None:
    await service.units.create_unit({"id": "RRG-1", "kind": "rapid_response_group", "home_lat": STOCKMANN[0],
                                     "home_lon": STOCKMANN[1], "on_shift": True}, Actor("sam", "supervisor"))
    short, long = await service.coverage(0.5), await service.coverage(10)
    assert short.units == long.units == 1
    assert 0 < short.share < long.share <= 1
    assert short.uncovered["type"] == "FeatureCollection" and short.uncovered["features"]
