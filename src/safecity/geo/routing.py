"""Travel times on the road graph: many units to one incident, one route for the map, a reference search.

Why one search from the incident: ranking a thousand units by road travel time is one Dijkstra on the
reverse graph started at the incident, stopped as soon as the k best units are settled — not a thousand
searches. Edges are turn-free (no turn restrictions or penalties), so times are lower than a router with
turn costs would give, and equal for every unit alike.

The searches are heapq Dijkstra over flat arrays made once per graph: a bounded search touches a few
thousand junctions, while scipy's Dijkstra spends about 5 ms per call on a 500,000-junction graph just
setting up per-junction state, and needs its distance limit known in advance.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

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
    """CSR arrays as `array.array`: indexing one is several times faster than indexing numpy scalars, and
    unlike a list of millions of numbers it is no container the garbage collector walks on full collections.
    """

    offsets: array[int]
    targets: array[int]
    seconds: array[float]
    rev_offsets: array[int]
    rev_sources: array[int]
    rev_seconds: array[float]


def _ints(values: npt.NDArray[Any]) -> array[int]:
    return array("q", np.ascontiguousarray(values, dtype=np.int64).tobytes())


def _floats(values: npt.NDArray[Any]) -> array[float]:
    return array("d", np.ascontiguousarray(values, dtype=np.float64).tobytes())


def _lists(graph: RoadGraph) -> _Lists:
    def build() -> _Lists:
        return _Lists(
            _ints(graph.edge_offsets),
            _ints(graph.edge_target),
            _floats(graph.edge_seconds),
            _ints(graph.rev_offsets),
            _ints(graph.rev_source),
            _floats(graph.edge_seconds[graph.rev_edge]),
        )

    return graph.cached("search-lists", build)


def travel_times_to(
    graph: RoadGraph,
    target: Snap,
    sources: Mapping[K, Snap],
    *,
    k: int | None = None,
    cutoff_s: float | None = None,
) -> dict[K, float]:
    """Seconds from each source to the target, by one reverse Dijkstra from the target.

    With `k`, the search stops once the k nearest sources are known and only those are returned (ties
    broken arbitrarily); with `cutoff_s`, sources farther than that are left out. Sources that are not
    returned are not reachable within those bounds. The result is ordered by travel time.
    """
    lists = _lists(graph)
    keys = list(sources)
    wanted = len(keys) if k is None else min(k, len(keys))
    limit = math.inf if cutoff_s is None else cutoff_s
    result: dict[K, float] = {}
    if wanted <= 0:
        return result

    waiting: dict[int, list[tuple[float, int]]] = {}
    ready: list[tuple[float, int]] = []
    for i, key in enumerate(keys):
        source = sources[key]
        for leg in source.exits:
            waiting.setdefault(leg.node, []).append((leg.seconds, i))
        if source.edge == target.edge:  # driving straight along the shared road may beat any detour
            direct = same_edge_seconds(graph, source, target)
            if direct < math.inf:
                ready.append((direct, i))
    heapq.heapify(ready)

    dist: dict[int, float] = {}
    frontier: list[tuple[float, int]] = []
    for leg in target.entries:
        if leg.seconds < dist.get(leg.node, math.inf):
            dist[leg.node] = leg.seconds
            heapq.heappush(frontier, (leg.seconds, leg.node))

    offsets, sources_of, seconds_of = lists.rev_offsets, lists.rev_sources, lists.rev_seconds
    heappush, heappop, known, inf = heapq.heappush, heapq.heappop, dist.get, math.inf
    while frontier:
        d, node = heappop(frontier)
        if d > limit:
            break
        if d > dist[node]:
            continue
        while ready and ready[0][0] <= d:  # no junction settled from now on can beat these
            value, i = heappop(ready)
            if keys[i] not in result:
                result[keys[i]] = value
                if len(result) >= wanted:
                    return result
        found = waiting.pop(node, None)
        if found is not None:
            for off, i in found:
                heappush(ready, (d + off, i))
        for j in range(offsets[node], offsets[node + 1]):
            before = sources_of[j]
            nd = d + seconds_of[j]
            if nd < known(before, inf):
                dist[before] = nd
                heappush(frontier, (nd, before))
    while ready and ready[0][0] <= limit:
        value, i = heappop(ready)
        if keys[i] not in result:
            result[keys[i]] = value
            if len(result) >= wanted:
                break
    return result


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
