"""Snapping a WGS84 point to the nearest point of the nearest road (not the nearest junction).

Why edges and not nodes: a unit parked mid-block on a long one-way street is not at either corner; the
partial edge in front of it (and behind it, if the street is two-way) is part of its travel time.

The index holds sample points every `SAMPLE_SPACING_M` along every road segment, projected to metres
(azimuthal equidistant around the graph's centre). The nearest sample at distance `d` bounds the answer:
every segment holding a point nearer than `d` has a sample within `d + spacing/2`, so projecting exactly
onto the segments of all those samples finds the true nearest point, near or far from the roads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

from safecity.geo.coords import LocalProjection, haversine_m, haversine_m_array
from safecity.geo.graph import RoadGraph

SAMPLE_SPACING_M = 40.0

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Leg(NamedTuple):
    """A piece of one edge between a snapped point and a graph node.

    For an exit (leaving the point) `node` is where the piece ends; for an entry (arriving at the point) it is
    where it starts. `edge` is -1 for the zero-length leg of a point lying exactly on a node.
    """

    node: int
    seconds: float
    edge: int
    fraction_from: float
    fraction_to: float


@dataclass(frozen=True)
class Snap:
    """A point on the road graph: on canonical `edge` at `fraction` of its length from the edge's source.

    `exits` are the ways to leave the point toward graph nodes (forward along the edge; backward too when the
    road is two-way), `entries` the ways to arrive at it; both carry the partial-edge travel times.
    `distance_m` is how far the original point was from the road: callers decide how far is too far.
    """

    lat: float
    lon: float
    distance_m: float
    edge: int
    twin: int
    fraction: float
    exits: tuple[Leg, ...]
    entries: tuple[Leg, ...]


class _Index:
    def __init__(self, graph: RoadGraph) -> None:
        self.projection = LocalProjection.for_box(graph.bounding_box())
        edges = np.flatnonzero(graph.canonical_edges())
        counts = graph.geom_offsets[edges + 1] - graph.geom_offsets[edges] + 2
        starts = np.zeros(edges.size + 1, np.int64)
        starts[1:] = np.cumsum(counts)
        lat, lon, x, y = _polyline_vertices(graph, self.projection, edges, counts, starts)
        last = np.zeros(lat.size, np.bool_)
        last[starts[1:] - 1] = True
        first_vertex = np.flatnonzero(~last)  # segment i runs from vertex i to vertex i + 1
        self.edge = np.repeat(edges, counts - 1)
        self.lat0, self.lon0 = lat[first_vertex], lon[first_vertex]
        self.lat1, self.lon1 = lat[first_vertex + 1], lon[first_vertex + 1]
        self.x0, self.y0 = x[first_vertex], y[first_vertex]
        self.x1, self.y1 = x[first_vertex + 1], y[first_vertex + 1]
        self.metres = haversine_m_array(self.lat0, self.lon0, self.lat1, self.lon1)
        before = np.cumsum(self.metres) - self.metres
        segment_starts = starts[:-1] - np.arange(edges.size)
        self.metres_before = before - np.repeat(before[segment_starts], counts - 1)
        self.edge_metres = np.zeros(graph.edge_count, np.float64)
        np.add.at(self.edge_metres, self.edge, self.metres)

        planar = np.hypot(self.x1 - self.x0, self.y1 - self.y0)
        per_segment = np.maximum(1, np.ceil(planar / SAMPLE_SPACING_M)).astype(np.int64)
        owner = np.repeat(np.arange(self.edge.size), per_segment)
        offsets = np.cumsum(per_segment) - per_segment
        t = (np.arange(owner.size) - offsets[owner] + 0.5) / per_segment[owner]
        samples_x = self.x0[owner] + t * (self.x1 - self.x0)[owner]
        samples_y = self.y0[owner] + t * (self.y1 - self.y0)[owner]
        self.sample_segment = owner
        self.slack = float(max(SAMPLE_SPACING_M, float(np.max(planar / per_segment)))) / 2 + 1e-6
        # unbalanced, uncompacted: builds several times faster, queries as fast on road-like point sets
        self.tree = cKDTree(np.column_stack((samples_x, samples_y)), balanced_tree=False, compact_nodes=False)

    def nearest(self, lat: float, lon: float) -> tuple[int, float]:
        """(segment, t along it) of the point of the road nearest to (lat, lon)."""
        px, py = self.projection.to_xy([lat], [lon])
        point = (float(px[0]), float(py[0]))
        d0, _ = self.tree.query(point)
        candidates = np.unique(self.sample_segment[self.tree.query_ball_point(point, float(d0) + self.slack)])
        dx, dy = self.x1[candidates] - self.x0[candidates], self.y1[candidates] - self.y0[candidates]
        length2 = dx * dx + dy * dy
        safe = np.where(length2 > 0, length2, 1.0)
        t = np.clip(((point[0] - self.x0[candidates]) * dx + (point[1] - self.y0[candidates]) * dy) / safe, 0.0, 1.0)
        t = np.where(length2 > 0, t, 0.0)
        gap = np.hypot(self.x0[candidates] + t * dx - point[0], self.y0[candidates] + t * dy - point[1])
        best = int(np.argmin(gap))
        return int(candidates[best]), float(t[best])


def _polyline_vertices(
    graph: RoadGraph, projection: LocalProjection, edges: I64, counts: I64, starts: I64
) -> tuple[F64, F64, F64, F64]:
    """Flat lat, lon, x, y of the full polylines of canonical edges: source node, inner vertices, target node.

    Junctions and inner vertices are projected once each and then gathered, not once per polyline.
    """
    total = int(starts[-1])
    owner = np.repeat(np.arange(edges.size), counts)
    within = np.arange(total) - starts[:-1][owner]
    is_first, is_last = within == 0, within == counts[owner] - 1
    inner = ~(is_first | is_last)
    point = np.empty(total, np.int64)  # index into nodes, then geometry vertices after them
    point[is_first] = graph.edge_source[edges][owner[is_first]]
    point[is_last] = graph.edge_target[edges][owner[is_last]]
    point[inner] = graph.node_count + graph.geom_offsets[edges][owner[inner]] + within[inner] - 1
    all_lat = np.concatenate((graph.node_lat, graph.geom_lat))
    all_lon = np.concatenate((graph.node_lon, graph.geom_lon))
    all_x, all_y = projection.to_xy(all_lat, all_lon)
    return all_lat[point], all_lon[point], all_x[point], all_y[point]


def _index(graph: RoadGraph) -> _Index:
    return graph.cached("snap-index", lambda: _Index(graph))


def snap(graph: RoadGraph, lat: float, lon: float) -> Snap:
    """The nearest point on the nearest road to (lat, lon), however far away, with its partial-edge times."""
    index = _index(graph)
    segment, t = index.nearest(lat, lon)
    edge = int(index.edge[segment])
    along = float(index.metres_before[segment] + t * index.metres[segment])
    total = float(index.edge_metres[edge])
    fraction = min(1.0, max(0.0, along / total)) if total > 0 else 0.0
    snapped_lat = float(index.lat0[segment] + t * (index.lat1[segment] - index.lat0[segment]))
    snapped_lon = float(index.lon0[segment] + t * (index.lon1[segment] - index.lon0[segment]))
    off_road = haversine_m(lat, lon, snapped_lat, snapped_lon)
    return snap_on_edge(graph, edge, fraction, snapped_lat, snapped_lon, off_road)


def snap_to_node(graph: RoadGraph, node: int) -> Snap:
    """A snap exactly at junction `node` (tests, and callers that already know the junction)."""
    lat, lon = float(graph.node_lat[node]), float(graph.node_lon[node])
    leaving = int(graph.edge_offsets[node])
    if leaving < int(graph.edge_offsets[node + 1]):
        edge, fraction = leaving, 0.0
    else:  # every node of a strongly connected graph has an edge out; kept for graphs of one node
        edge, fraction = int(graph.rev_edge[graph.rev_offsets[node]]), 1.0
    twin = int(graph.edge_twin[edge])
    if 0 <= twin < edge:
        edge, fraction = twin, 1.0 - fraction
    return snap_on_edge(graph, edge, fraction, lat, lon, 0.0)


def snap_on_edge(graph: RoadGraph, edge: int, fraction: float, lat: float, lon: float, distance_m: float) -> Snap:
    """The snap at `fraction` of canonical `edge`: exits and entries with their partial-edge seconds."""
    twin = int(graph.edge_twin[edge])
    source, target = int(graph.edge_source[edge]), int(graph.edge_target[edge])
    seconds = float(graph.edge_seconds[edge])
    exits = [Leg(target, (1.0 - fraction) * seconds, edge, fraction, 1.0)]
    entries = [Leg(source, fraction * seconds, edge, 0.0, fraction)]
    if twin >= 0:
        back = float(graph.edge_seconds[twin])
        exits.append(Leg(source, fraction * back, twin, 1.0 - fraction, 1.0))
        entries.append(Leg(target, (1.0 - fraction) * back, twin, 0.0, 1.0 - fraction))
    if fraction <= 0.0 or fraction >= 1.0:  # on a junction: every road through it is open
        node = source if fraction <= 0.0 else target
        exits.append(Leg(node, 0.0, -1, 0.0, 0.0))
        entries.append(Leg(node, 0.0, -1, 0.0, 0.0))
    return Snap(lat, lon, distance_m, edge, twin, fraction, tuple(exits), tuple(entries))


def same_edge_seconds(graph: RoadGraph, source: Snap, target: Snap) -> float:
    """Seconds to drive from `source` straight to `target` along the road both lie on; inf if they don't."""
    if source.edge != target.edge:
        return math.inf
    if source.fraction <= target.fraction:
        return (target.fraction - source.fraction) * float(graph.edge_seconds[source.edge])
    if source.twin >= 0:
        return (source.fraction - target.fraction) * float(graph.edge_seconds[source.twin])
    return math.inf
