from __future__ import annotations

import random
import time

import pytest

from safecity.geo.coverage import coverage, uncovered_geojson
from safecity.geo.graph import RoadGraph
from safecity.geo.routing import Snap, snap


def _units(graph: RoadGraph, count: int, seed: int) -> list[Snap]:
    box = graph.bounding_box()
    rng = random.Random(seed)
    return [snap(graph, rng.uniform(box.south, box.north), rng.uniform(box.west, box.east)) for _ in range(count)]


def test_no_units_cover_nothing(helsinki: RoadGraph) -> None:
    found = coverage(helsinki, [], 10)
    assert found.share_of_road_length_reachable == 0.0
    assert not found.covered_edge_mask.any()
    assert len(uncovered_geojson(helsinki, found, max_features=10_000)["features"]) == helsinki.canonical_edges().sum()


def test_share_grows_with_minutes_and_stays_a_share(helsinki: RoadGraph) -> None:
    units = _units(helsinki, 3, seed=1)
    shares = [coverage(helsinki, units, minutes).share_of_road_length_reachable for minutes in (0, 0.5, 1, 2, 4, 8)]
    assert shares == sorted(shares)
    assert all(0.0 <= share <= 1.0 for share in shares)
    assert shares[0] == 0.0 < shares[1] < shares[-1]  # no time, no road
    assert coverage(helsinki, units, 60).share_of_road_length_reachable == pytest.approx(1.0)


def test_a_unit_covers_its_own_road_first(helsinki: RoadGraph) -> None:
    unit = _units(helsinki, 1, seed=3)[0]
    found = coverage(helsinki, [unit], 0.05)
    assert found.covered_fraction[unit.edge] > 0
    assert found.share_of_road_length_reachable < 0.05


def test_thousand_units_recompute_quickly(helsinki: RoadGraph) -> None:
    units = _units(helsinki, 1_000, seed=2)
    started = time.perf_counter()
    found = coverage(helsinki, units, 2)
    assert time.perf_counter() - started < 5.0  # measured well under a second; generous for loaded CI
    assert found.share_of_road_length_reachable == pytest.approx(1.0)


def test_uncovered_layer_is_geojson_with_longest_gaps_first(helsinki: RoadGraph) -> None:
    found = coverage(helsinki, _units(helsinki, 2, seed=5), 1)
    layer = uncovered_geojson(helsinki, found, max_features=25)
    assert layer["type"] == "FeatureCollection"
    features = layer["features"]
    assert 0 < len(features) <= 25
    gaps = [feature["properties"]["uncovered_m"] for feature in features]
    assert gaps == sorted(gaps, reverse=True)
    for feature in features:
        geometry = feature["geometry"]
        assert geometry["type"] == "MultiLineString"
        for line in geometry["coordinates"]:
            assert len(line) >= 2
            assert all(24.9 < lon < 25.0 and 60.1 < lat < 60.2 for lon, lat in line)
    assert uncovered_geojson(helsinki, found, max_features=0)["features"] == []
