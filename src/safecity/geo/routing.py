"""Travel times on the road graph: many units to one incident, one route for the map, a reference search.

Why one search from the incident: ranking a thousand units by road travel time is one Dijkstra on the
reverse graph started at the incident, stopped as soon as the k best units are settled — not a thousand
searches. Edges are turn-free (no turn restrictions or penalties), so times are lower than a router with
turn costs would give, and equal for every unit alike.

The many-to-one search is scipy's Dijkstra on the reverse graph, bounded by a travel-time limit: it
costs about 2 ms per call on a 500,000-junction graph to set up per-junction state, then a fraction of a
microsecond per junction, where a Python heapq search costs about 3 µs per junction. The one-route search
for the map stays a heapq Dijkstra that stops at the target.
"""

from __future__ import annotations

import heapq
import math
import sys
import threading
from array import array
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import dijkstra  # type: ignore[import-untyped]

from safecity.geo.coords import haversine_m_array
from safecity.geo.errors import NoRouteError
from safecity.geo.graph import RoadGraph
from safecity.geo.snapping import Leg, Snap, same_edge_seconds, snap, snap_on_edge, snap_to_node

__all__ = [
    "Leg",
    "Route",
    "Snap",
    "plain_dijkstra",
    "route",
    "route_geojson",
    "snap",
    "snap_on_edge",
    "snap_to_node",
    "travel_times_to",
]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class _Lists:
    """Forward CSR arrays as `array.array`: indexing one is several times faster than indexing numpy scalars,
    and unlike a list of millions of numbers it is no container the garbage collector walks."""

    offsets: array[int]
    targets: array[int]
    seconds: array[float]


def _lists(graph: RoadGraph) -> _Lists:
    def build() -> _Lists:
        return _Lists(
            array("q", graph.edge_offsets.astype(np.int64).tobytes()),
            array("q", graph.edge_target.astype(np.int64).tobytes()),
            array("d", graph.edge_seconds.astype(np.float64).tobytes()),
        )

    return graph.cached("search-lists", build)


FIRST_LIMIT_FACTOR = 2.4
"""First limit of a top-k search, times the straight-line lower bound of the k-th source: on street grids the
k-th arrives at 1.6-2.5 times that bound, so one search mostly suffices; a miss costs one more, doubled."""
FIRST_LIMIT_S = 30.0

_START_SLOTS = 3  # a snapped point has at most three entries: two partial edges and its junction


@dataclass(frozen=True)
class _Reverse:
    """The reverse graph as a scipy CSR matrix with one extra node, the search's start.

    The start's row is last, so its `_START_SLOTS` edges sit at the end of `indices`/`data`; each search
    writes the target's entries there (to the junction, with the partial-edge seconds) under `lock`.
    Starting from that one node adds the entry seconds in the same order as a search seeded with them.
    """

    matrix: Any
    lock: threading.Lock
    start: int
    metres_per_s: float
    """The fastest edge: straight-line distance over it is a lower bound on any travel time."""
    longest_s: float
    """No shortest path takes longer than every edge driven once."""


def _reverse(graph: RoadGraph) -> _Reverse:
    def build() -> _Reverse:
        n, e = graph.node_count, graph.edge_count
        index = np.int32 if e + _START_SLOTS < 2**31 else np.int64
        indptr = np.append(graph.rev_offsets, e + _START_SLOTS).astype(index)
        indices = np.concatenate((graph.rev_source, np.full(_START_SLOTS, n))).astype(index)
        data = np.concatenate((graph.edge_seconds[graph.rev_edge].astype(np.float64), np.zeros(_START_SLOTS)))
        matrix = csr_matrix((data, indices, indptr), shape=(n + 1, n + 1), copy=False)
        seconds = graph.edge_seconds.astype(np.float64)
        moving = seconds > 0
        speed = float(np.max(graph.edge_metres[moving] / seconds[moving], initial=0.0))
        return _Reverse(matrix, threading.Lock(), n, speed, float(seconds.sum()) * 2 + 1.0)

    return graph.cached("reverse-matrix", build)


def _reverse_search(reverse: _Reverse, target: Snap, limit: float) -> npt.NDArray[np.float64]:
    """Seconds from every junction to the target, exact up to `limit` (inclusive); farther ones are inf."""
    entries = list(target.entries)
    entries += [entries[0]] * (_START_SLOTS - len(entries))  # a repeated edge changes nothing
    with reverse.lock:
        indices, data = reverse.matrix.indices, reverse.matrix.data
        for slot, leg in enumerate(entries, start=len(data) - _START_SLOTS):
            indices[slot], data[slot] = leg.node, leg.seconds
        found = dijkstra(reverse.matrix, directed=True, indices=[reverse.start], limit=limit, min_only=True)
    return np.asarray(found, dtype=np.float64)


def travel_times_to(
    graph: RoadGraph,
    target: Snap,
    sources: Mapping[K, Snap],
    *,
    k: int | None = None,
    cutoff_s: float | None = None,
) -> dict[K, float]:
    """Seconds from each source to the target, by reverse Dijkstra from the target.

    With `k`, only the k nearest sources are returned (ties broken arbitrarily); with `cutoff_s`, sources
    farther than that are left out. Sources that are not returned are not reachable within those bounds.
    The result is ordered by travel time.

    Why a bounded search, repeated: a search limited to L seconds gets every junction within L exactly
    (and no other), so every source it finds within L has its exact time and no source it misses can beat
    them. For the k nearest, L starts near the straight-line lower bound of the k-th and doubles until k
    sources are within it; most answers take one or two searches.
    """
    keys = list(sources)
    wanted = len(keys) if k is None else min(k, len(keys))
    cutoff = math.inf if cutoff_s is None else cutoff_s
    if wanted <= 0 or cutoff < 0:
        return {}
    reverse = _reverse(graph)
    snaps = [sources[key] for key in keys]
    exit_node, exit_s, owner, direct = [], [], [], np.full(len(snaps), math.inf)
    for i, placed in enumerate(snaps):
        for leg in placed.exits:
            exit_node.append(leg.node)
            exit_s.append(leg.seconds)
            owner.append(i)
        if placed.edge == target.edge:  # driving straight along the shared road may beat any detour
            direct[i] = same_edge_seconds(graph, placed, target)
    nodes, seconds, owners = np.array(exit_node, np.int64), np.array(exit_s, np.float64), np.array(owner, np.int64)

    limit = cutoff
    if wanted < len(keys):
        limit = min(cutoff, max(FIRST_LIMIT_S, FIRST_LIMIT_FACTOR * _kth_lower_bound(reverse, target, snaps, wanted)))
    while True:
        dist = _reverse_search(reverse, target, limit)
        arrival = direct.copy()
        np.minimum.at(arrival, owners, dist[nodes] + seconds)
        order = np.argsort(arrival, kind="stable")
        within = int(np.searchsorted(arrival[order], min(limit, sys.float_info.max), side="right"))
        if within >= wanted or limit >= cutoff:
            return {keys[i]: float(arrival[i]) for i in order[: min(within, wanted)]}
        limit = min(cutoff, math.inf if limit * 2 > reverse.longest_s else limit * 2)


def _kth_lower_bound(reverse: _Reverse, target: Snap, snaps: list[Snap], k: int) -> float:
    """The k-th smallest straight-line distance at the fastest edge's speed: no k sources arrive sooner.

    Only a starting guess for the limit: exactness never depends on it.
    """
    if reverse.metres_per_s <= 0:
        return 0.0
    lats = np.array([s.lat for s in snaps], np.float64)
    lons = np.array([s.lon for s in snaps], np.float64)
    metres = haversine_m_array(target.lat, target.lon, lats, lons)
    return float(np.partition(metres, k - 1)[k - 1]) / reverse.metres_per_s


def plain_dijkstra(graph: RoadGraph, source_node: int, target_node: int) -> float:
    """Seconds from node to node by a textbook forward Dijkstra: the yardstick for the fast searches."""
    dist = {source_node: 0.0}
    done: set[int] = set()
    heap = [(0.0, source_node)]
    while heap:
        d, node = heapq.heappop(heap)
        if node == target_node:
            return d
        if node in done:
            continue
        done.add(node)
        for edge in range(int(graph.edge_offsets[node]), int(graph.edge_offsets[node + 1])):
            nxt = int(graph.edge_target[edge])
            nd = d + float(graph.edge_seconds[edge])
            if nd < dist.get(nxt, math.inf):
                dist[nxt] = nd
                heapq.heappush(heap, (nd, nxt))
    return math.inf


@dataclass(frozen=True)
class Route:
    """A drivable route: travel time, length, and the line to draw as (lon, lat) pairs (GeoJSON order)."""

    seconds: float
    metres: float
    coordinates: tuple[tuple[float, float], ...]


def route(graph: RoadGraph, source: Snap, target: Snap) -> Route:
    """The fastest route from `source` to `target` (forward Dijkstra, stopped when the target is settled)."""
    lists = _lists(graph)
    best = same_edge_seconds(graph, source, target)
    best_entry: Leg | None = None
    arriving: dict[int, tuple[float, Leg]] = {}
    for leg in target.entries:
        if leg.seconds < arriving.get(leg.node, (math.inf, leg))[0]:
            arriving[leg.node] = (leg.seconds, leg)
    dist: dict[int, float] = {}
    via: dict[int, int] = {}
    first: dict[int, Leg] = {}
    frontier: list[tuple[float, int]] = []
    for leg in source.exits:
        if leg.seconds < dist.get(leg.node, math.inf):
            dist[leg.node], first[leg.node] = leg.seconds, leg
            heapq.heappush(frontier, (leg.seconds, leg.node))
    while frontier and frontier[0][0] < best:
        d, node = heapq.heappop(frontier)
        if d > dist[node]:
            continue
        if node in arriving and d + arriving[node][0] < best:
            best, best_entry = d + arriving[node][0], arriving[node][1]
        for edge in range(lists.offsets[node], lists.offsets[node + 1]):
            nxt = lists.targets[edge]
            nd = d + lists.seconds[edge]
            if nd < dist.get(nxt, math.inf):
                dist[nxt], via[nxt] = nd, edge
                first.pop(nxt, None)
                heapq.heappush(frontier, (nd, nxt))
    if best == math.inf:
        raise NoRouteError("target not reachable from source")
    pieces = [_direct_piece(source, target)] if best_entry is None else _pieces(graph, best_entry, via, first)
    return _route_from_pieces(graph, best, pieces, source, target)


Piece = tuple[int, float, float]
"""(edge, from fraction, to fraction) of a route; edge -1 for the zero-length leg at a junction."""


def _pieces(graph: RoadGraph, entry: Leg, via: dict[int, int], first: dict[int, Leg]) -> list[Piece]:
    edges: list[int] = []
    node = entry.node
    while node not in first:
        edge = via[node]
        edges.append(edge)
        node = int(graph.edge_source[edge])
    pieces = [(first[node].edge, first[node].fraction_from, first[node].fraction_to)]
    pieces += [(edge, 0.0, 1.0) for edge in reversed(edges)]
    pieces.append((entry.edge, entry.fraction_from, entry.fraction_to))
    return pieces


def _direct_piece(source: Snap, target: Snap) -> Piece:
    if source.fraction <= target.fraction:
        return (source.edge, source.fraction, target.fraction)
    return (source.twin, 1.0 - source.fraction, 1.0 - target.fraction)


def _route_from_pieces(graph: RoadGraph, seconds: float, pieces: list[Piece], source: Snap, target: Snap) -> Route:
    """The line through the pieces, pinned to the snapped points at both ends."""
    coordinates: list[tuple[float, float]] = [(source.lon, source.lat)]
    metres = 0.0
    for edge, lo, hi in pieces:
        if edge < 0:
            continue
        metres += (hi - lo) * float(graph.edge_metres[edge])
        coordinates.extend(graph.edge_part(edge, lo, hi))
    coordinates.append((target.lon, target.lat))
    # the cut ends repeat the snapped points (up to rounding): keep one of each
    kept = [coordinates[0]]
    for point in coordinates[1:-1]:
        if abs(point[0] - kept[-1][0]) > 1e-9 or abs(point[1] - kept[-1][1]) > 1e-9:
            kept.append(point)
    end = coordinates[-1]
    if len(kept) > 1 and abs(end[0] - kept[-1][0]) <= 1e-9 and abs(end[1] - kept[-1][1]) <= 1e-9:
        kept[-1] = end
    elif end != kept[-1]:
        kept.append(end)
    return Route(seconds, metres, tuple(kept))


def route_geojson(found: Route) -> dict[str, Any]:
    """A GeoJSON Feature (RFC 7946: [lon, lat]) with a LineString of at least two positions."""
    coordinates = [[lon, lat] for lon, lat in found.coordinates]
    if len(coordinates) == 1:
        coordinates.append(list(coordinates[0]))
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coordinates},
        "properties": {"seconds": round(found.seconds, 3), "metres": round(found.metres, 1)},
    }
