from __future__ import annotations

import math
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from safecity.geo import routing
from safecity.geo.coords import LocalProjection, destination, haversine_m
from safecity.geo.errors import NoRouteError
from safecity.geo.graph import RoadGraph
from safecity.geo.routing import (
    Snap,
    plain_dijkstra,
    route,
    route_geojson,
    snap,
    snap_on_edge,
    snap_to_node,
    travel_times_to,
)
from tests.geo._reference import expected_seconds


def _random_snaps(graph: RoadGraph, count: int, seed: int) -> list[Snap]:
    box = graph.bounding_box()
    rng = random.Random(seed)
    return [snap(graph, rng.uniform(box.south, box.north), rng.uniform(box.west, box.east)) for _ in range(count)]


def _all_segments(graph: RoadGraph, projection: LocalProjection) -> tuple[np.ndarray, ...]:
    """Every straight piece of every edge, projected: (x0, y0, x1, y1)."""
    starts, ends = [], []
    for edge in range(graph.edge_count):
        lats, lons = graph.edge_polyline(edge)
        starts.append(np.column_stack((lats[:-1], lons[:-1])))
        ends.append(np.column_stack((lats[1:], lons[1:])))
    a, b = np.concatenate(starts), np.concatenate(ends)
    return (*projection.to_xy(a[:, 0], a[:, 1]), *projection.to_xy(b[:, 0], b[:, 1]))


def _brute_nearest_m(segments: tuple[np.ndarray, ...], px: float, py: float) -> float:
    x0, y0, x1, y1 = segments
    dx, dy = x1 - x0, y1 - y0
    length2 = np.where(dx * dx + dy * dy > 0, dx * dx + dy * dy, 1.0)
    t = np.clip(((px - x0) * dx + (py - y0) * dy) / length2, 0, 1)
    return float(np.min(np.hypot(x0 + t * dx - px, y0 + t * dy - py)))


def test_snap_finds_the_nearest_point_of_any_road(helsinki: RoadGraph) -> None:
    projection = LocalProjection.for_box(helsinki.bounding_box())
    segments = _all_segments(helsinki, projection)
    box = helsinki.bounding_box().expanded(300)
    rng = random.Random(5)
    for _ in range(200):
        lat, lon = rng.uniform(box.south, box.north), rng.uniform(box.west, box.east)
        placed = snap(helsinki, lat, lon)
        sx, sy = projection.to_xy([placed.lat], [placed.lon])
        px, py = projection.to_xy([lat], [lon])
        assert math.hypot(sx[0] - px[0], sy[0] - py[0]) == pytest.approx(
            _brute_nearest_m(segments, float(px[0]), float(py[0])), abs=1e-3
        )
        assert placed.distance_m == pytest.approx(haversine_m(lat, lon, placed.lat, placed.lon))
        assert 0.0 <= placed.fraction <= 1.0


def test_snap_on_a_junction_is_that_junction(helsinki: RoadGraph) -> None:
    node = 123
    placed = snap(helsinki, float(helsinki.node_lat[node]), float(helsinki.node_lon[node]))
    assert placed.distance_m < 0.01
    assert any(leg.node == node and leg.seconds == pytest.approx(0.0, abs=1e-6) for leg in placed.exits)


def test_snap_beside_a_road_returns_to_it(helsinki: RoadGraph) -> None:
    edge = int(np.argmax(np.where(helsinki.canonical_edges(), helsinki.edge_metres, 0)))
    lats, lons = helsinki.edge_polyline(edge)
    mid_lat, mid_lon = (lats[0] + lats[1]) / 2, (lons[0] + lons[1]) / 2
    side = destination(mid_lat, mid_lon, 0.0, 3.0)
    placed = snap(helsinki, *side)
    assert placed.edge == edge
    assert placed.distance_m < 3.01


def test_far_points_still_snap_and_say_how_far(helsinki: RoadGraph) -> None:
    box = helsinki.bounding_box()
    lat, lon = destination(box.north, box.east, 45.0, 5_000.0)
    placed = snap(helsinki, lat, lon)
    assert placed.distance_m > 4_500


def test_reverse_search_equals_plain_dijkstra_on_250_helsinki_pairs(helsinki: RoadGraph) -> None:
    points = _random_snaps(helsinki, 500, seed=11)
    for source, target in zip(points[:250], points[250:], strict=True):
        got = travel_times_to(helsinki, target, {"unit": source})
        assert got["unit"] == pytest.approx(expected_seconds(helsinki, source, target), abs=1e-6)


def test_node_snapped_times_equal_plain_dijkstra(helsinki: RoadGraph) -> None:
    rng = random.Random(3)
    target = rng.randrange(helsinki.node_count)
    nodes = rng.sample(range(helsinki.node_count), 200)
    got = travel_times_to(helsinki, snap_to_node(helsinki, target), {n: snap_to_node(helsinki, n) for n in nodes})
    for node in nodes:
        assert got[node] == pytest.approx(plain_dijkstra(helsinki, node, target), abs=1e-6)


def test_one_search_serves_a_thousand_units(helsinki: RoadGraph) -> None:
    units = dict(enumerate(_random_snaps(helsinki, 1_000, seed=2)))
    incident = _random_snaps(helsinki, 1, seed=9)[0]
    everyone = travel_times_to(helsinki, incident, units)
    assert len(everyone) == 1_000
    assert list(everyone.values()) == sorted(everyone.values())
    for key in random.Random(1).sample(list(units), 25):
        assert everyone[key] == pytest.approx(expected_seconds(helsinki, units[key], incident), abs=1e-6)
    best = travel_times_to(helsinki, incident, units, k=5)
    assert sorted(best.values()) == pytest.approx(sorted(everyone.values())[:5])
    assert all(everyone[key] == pytest.approx(value) for key, value in best.items())
    near = travel_times_to(helsinki, incident, units, cutoff_s=60.0)
    assert near == pytest.approx({key: value for key, value in everyone.items() if value <= 60.0})


def test_top_k_is_exact_however_low_the_first_limit(helsinki: RoadGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    units = dict(enumerate(_random_snaps(helsinki, 300, seed=4)))
    incidents = _random_snaps(helsinki, 5, seed=5)
    monkeypatch.setattr(routing, "FIRST_LIMIT_FACTOR", 0.0)
    monkeypatch.setattr(routing, "FIRST_LIMIT_S", 0.01)  # many doublings before k units are within the limit
    for incident in incidents:
        everyone = travel_times_to(helsinki, incident, units)
        best = travel_times_to(helsinki, incident, units, k=7)
        assert list(best.values()) == sorted(everyone.values())[:7]
        assert all(everyone[key] == value for key, value in best.items())


def test_top_k_is_exact_when_the_first_limit_overshoots(helsinki: RoadGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    units = dict(enumerate(_random_snaps(helsinki, 300, seed=6)))
    incident = _random_snaps(helsinki, 1, seed=7)[0]
    everyone = travel_times_to(helsinki, incident, units)
    monkeypatch.setattr(routing, "FIRST_LIMIT_S", 1e9)
    best = travel_times_to(helsinki, incident, units, k=3)
    assert list(best.values()) == sorted(everyone.values())[:3]


def test_a_unit_exactly_at_the_cutoff_is_kept(helsinki: RoadGraph) -> None:
    units = dict(enumerate(_random_snaps(helsinki, 50, seed=8)))
    incident = _random_snaps(helsinki, 1, seed=9)[0]
    everyone = travel_times_to(helsinki, incident, units)
    middle = sorted(everyone.values())[25]
    near = travel_times_to(helsinki, incident, units, cutoff_s=middle)
    assert near == {key: value for key, value in everyone.items() if value <= middle}
    assert middle in near.values()


def test_concurrent_searches_do_not_mix_their_targets(helsinki: RoadGraph) -> None:
    units = dict(enumerate(_random_snaps(helsinki, 200, seed=12)))
    incidents = _random_snaps(helsinki, 40, seed=13)
    alone = [travel_times_to(helsinki, incident, units, k=5) for incident in incidents]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda incident: travel_times_to(helsinki, incident, units, k=5), incidents))
    assert together == alone


def test_empty_or_zero_requests_answer_nothing(helsinki: RoadGraph) -> None:
    incident = _random_snaps(helsinki, 1, seed=9)[0]
    assert travel_times_to(helsinki, incident, {}) == {}
    assert travel_times_to(helsinki, incident, {"a": incident}, k=0) == {}
    assert travel_times_to(helsinki, incident, {"a": incident}) == {"a": 0.0}


def test_route_time_matches_and_geojson_is_lon_lat(helsinki: RoadGraph) -> None:
    points = _random_snaps(helsinki, 60, seed=21)
    for source, target in zip(points[:30], points[30:], strict=True):
        found = route(helsinki, source, target)
        assert found.seconds == pytest.approx(travel_times_to(helsinki, target, {0: source})[0], abs=1e-6)
        assert found.coordinates[0] == pytest.approx((source.lon, source.lat), abs=1e-7)
        assert found.coordinates[-1] == pytest.approx((target.lon, target.lat), abs=1e-7)
        drawn = sum(
            haversine_m(a[1], a[0], b[1], b[0]) for a, b in zip(found.coordinates, found.coordinates[1:], strict=False)
        )
        assert drawn == pytest.approx(found.metres, rel=1e-3, abs=0.5)
        assert found.metres >= haversine_m(source.lat, source.lon, target.lat, target.lon) - 0.5
        feature = route_geojson(found)
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "LineString"
        coordinates = feature["geometry"]["coordinates"]
        assert len(coordinates) >= 2
        assert all(24.9 < lon < 25.0 and 60.1 < lat < 60.2 for lon, lat in coordinates)
        assert feature["properties"]["seconds"] == pytest.approx(found.seconds, abs=1e-3)


def test_route_to_the_same_place_is_a_point_line(helsinki: RoadGraph) -> None:
    here = _random_snaps(helsinki, 1, seed=4)[0]
    found = route(helsinki, here, here)
    assert found.seconds == 0.0 and found.metres == 0.0
    assert len(route_geojson(found)["geometry"]["coordinates"]) == 2
    node = snap_to_node(helsinki, 10)
    assert len(route_geojson(route(helsinki, node, node))["geometry"]["coordinates"]) == 2


def test_no_route_error_when_unreachable(helsinki: RoadGraph) -> None:
    source = _random_snaps(helsinki, 1, seed=4)[0]
    stranded = snap_on_edge(helsinki, source.edge, 0.5, source.lat, source.lon, 0.0)
    broken = RoadGraph(**{**helsinki.arrays(), "edge_seconds": np.full(helsinki.edge_count, np.inf, np.float32)})
    with pytest.raises(NoRouteError):
        route(broken, stranded, snap_to_node(broken, (int(helsinki.edge_source[source.edge]) + 7) % 100))
