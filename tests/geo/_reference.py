"""Independent yardsticks for the router: legs recomputed from (edge, fraction), plain node-to-node Dijkstra."""

from __future__ import annotations

import math

from safecity.geo.graph import RoadGraph
from safecity.geo.routing import Snap, plain_dijkstra


def _legs(graph: RoadGraph, snap: Snap) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    e, f, twin = snap.edge, snap.fraction, snap.twin
    a, b, seconds = int(graph.edge_source[e]), int(graph.edge_target[e]), float(graph.edge_seconds[e])
    out, into = [(b, (1 - f) * seconds)], [(a, f * seconds)]
    if twin >= 0:
        back = float(graph.edge_seconds[twin])
        out.append((a, f * back))
        into.append((b, (1 - f) * back))
    if f == 0.0:
        out.append((a, 0.0))
        into.append((a, 0.0))
    if f == 1.0:
        out.append((b, 0.0))
        into.append((b, 0.0))
    return out, into


def expected_seconds(graph: RoadGraph, source: Snap, target: Snap) -> float:
    """Travel time between two snapped points, by brute force over their legs and plain Dijkstra."""
    best = math.inf
    if source.edge == target.edge:
        if source.fraction <= target.fraction:
            best = (target.fraction - source.fraction) * float(graph.edge_seconds[source.edge])
        elif source.twin >= 0:
            best = (source.fraction - target.fraction) * float(graph.edge_seconds[source.twin])
    exits, _ = _legs(graph, source)
    _, entries = _legs(graph, target)
    for node_out, leave in exits:
        for node_in, arrive in entries:
            best = min(best, leave + plain_dijkstra(graph, node_out, node_in) + arrive)
    return best
