"""Property tests on small random graphs: the fast searches agree with brute force everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from safecity.geo.coverage import coverage
from safecity.geo.graph import RoadGraph, Segments, assemble
from safecity.geo.routing import Snap, route, snap_on_edge, travel_times_to
from tests.geo._reference import expected_seconds

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def graphs(draw: st.DrawFn) -> RoadGraph:
    n = draw(st.integers(2, 9))
    count = draw(st.integers(1, 20))
    node = st.integers(0, n - 1)
    u = np.array(draw(st.lists(node, min_size=count, max_size=count)), np.int64)
    v = np.array(draw(st.lists(node, min_size=count, max_size=count)), np.int64)
    way = draw(st.lists(st.sampled_from(["both", "forward", "backward"]), min_size=count, max_size=count))
    metres = np.array(draw(st.lists(st.floats(0.0, 500.0), min_size=count, max_size=count)), np.float64)
    kmh = np.array(draw(st.lists(st.sampled_from([10.0, 30.0, 50.0, 80.0]), min_size=count, max_size=count)))
    lat = 60.0 + np.arange(n) * 1e-3
    lon = 25.0 + (np.arange(n) % 3) * 1e-3
    segments = Segments(
        u=u, v=v,
        forward=np.array([w != "backward" for w in way]), backward=np.array([w != "forward" for w in way]),
        kmh_forward=kmh, kmh_backward=kmh[::-1].copy(), metres=metres, way_id=np.arange(count, dtype=np.int64),
        geom_offsets=np.zeros(count + 1, np.int64), geom_lat=np.zeros(0), geom_lon=np.zeros(0),
    )  # fmt: skip
    graph = assemble(lat, lon, np.arange(n, dtype=np.int64), segments)
    assume(graph.edge_count > 0)
    return graph


@st.composite
def graph_and_snaps(draw: st.DrawFn) -> tuple[RoadGraph, list[Snap]]:
    graph = draw(graphs())
    canonical = np.flatnonzero(graph.canonical_edges()).tolist()
    places = draw(
        st.lists(
            st.tuples(st.sampled_from(canonical), st.sampled_from([0.0, 1.0, 0.5]) | st.floats(0.0, 1.0)),
            min_size=2,
            max_size=10,
        )
    )
    return graph, [snap_on_edge(graph, edge, fraction, 0.0, 0.0, 0.0) for edge, fraction in places]


@SETTINGS
@given(graph_and_snaps())
def test_reverse_search_equals_forward_dijkstra_from_every_source(case: tuple[RoadGraph, list[Snap]]) -> None:
    graph, snaps = case
    target, sources = snaps[0], dict(enumerate(snaps[1:]))
    got = travel_times_to(graph, target, sources)
    assert got.keys() == sources.keys()  # strongly connected: everyone arrives
    for key, source in sources.items():
        assert got[key] == pytest.approx(expected_seconds(graph, source, target), abs=1e-6)


@SETTINGS
@given(graph_and_snaps(), st.integers(0, 10))
def test_early_stop_returns_exactly_the_k_smallest(case: tuple[RoadGraph, list[Snap]], k: int) -> None:
    graph, snaps = case
    target, sources = snaps[0], dict(enumerate(snaps[1:]))
    everyone = travel_times_to(graph, target, sources)
    best = travel_times_to(graph, target, sources, k=k)
    assert len(best) == min(k, len(sources))
    assert sorted(best.values()) == pytest.approx(sorted(everyone.values())[:k])
    for key, value in best.items():
        assert value == pytest.approx(everyone[key])


@SETTINGS
@given(graph_and_snaps(), st.floats(0.0, 200.0))
def test_cutoff_leaves_out_exactly_the_farther_sources(case: tuple[RoadGraph, list[Snap]], cutoff: float) -> None:
    graph, snaps = case
    target, sources = snaps[0], dict(enumerate(snaps[1:]))
    everyone = travel_times_to(graph, target, sources)
    near = travel_times_to(graph, target, sources, cutoff_s=cutoff)
    assert near == {key: value for key, value in everyone.items() if value <= cutoff}


@SETTINGS
@given(graph_and_snaps())
def test_route_takes_the_time_of_the_search(case: tuple[RoadGraph, list[Snap]]) -> None:
    graph, snaps = case
    found = route(graph, snaps[1], snaps[0])
    assert found.seconds == pytest.approx(expected_seconds(graph, snaps[1], snaps[0]), abs=1e-6)
    assert len(found.coordinates) >= 1


@SETTINGS
@given(graph_and_snaps(), st.floats(0.0, 5.0), st.floats(0.0, 5.0))
def test_coverage_grows_with_minutes(case: tuple[RoadGraph, list[Snap]], a: float, b: float) -> None:
    graph, snaps = case
    low, high = sorted((a, b))
    less, more = coverage(graph, snaps, low), coverage(graph, snaps, high)
    assert 0.0 <= less.share_of_road_length_reachable <= more.share_of_road_length_reachable + 1e-12 <= 1.0 + 1e-12
    assert (less.covered_fraction <= more.covered_fraction + 1e-12).all()
    assert coverage(graph, [], high).share_of_road_length_reachable == 0.0
