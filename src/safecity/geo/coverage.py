"""Which share of the road network the available units reach within N minutes, and where the gaps are.

One multi-source Dijkstra (scipy, with a virtual source joined to every unit's exits by the unit's
partial-edge seconds) gives the time to every junction. A road is then covered *in part*: from each end
that is reached with time to spare, as far as the spare time drives along it (and from the units' own
positions along the roads they stand on). The share is measured on road length, a two-way street counted
once. Edges are turn-free, like everywhere in `geo/`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import dijkstra  # type: ignore[import-untyped]

from safecity.geo.graph import RoadGraph
from safecity.geo.snapping import Snap

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Interval = tuple[float, float]


@dataclass(frozen=True)
class Coverage:
    """Reach of the units within `minutes`.

    `covered_fraction[e]` is the covered share of edge e's length (the same for both edges of a two-way
    street); `covered_edge_mask[e]` says the whole edge is reached. `head`/`tail` are the fractions covered
    from the edge's start and end; `unit_intervals` holds the exact covered intervals of edges units stand on.
    """

    minutes: float
    share_of_road_length_reachable: float
    covered_fraction: F64
    covered_edge_mask: Bools
    head: F64 = field(repr=False)
    tail: F64 = field(repr=False)
    unit_intervals: Mapping[int, tuple[Interval, ...]] = field(repr=False)


def coverage(graph: RoadGraph, unit_snaps: Sequence[Snap], minutes: float) -> Coverage:
    """Road coverage of the units within `minutes` of driving; no units cover nothing."""
    budget = max(0.0, minutes * 60.0)
    canonical = graph.canonical_edges()
    seconds = graph.edge_seconds.astype(np.float64)
    reached = _junction_seconds(graph, unit_snaps, budget)

    ids = np.arange(graph.edge_count)
    twin = graph.edge_twin.astype(np.int64)
    head = _spare_fraction(budget - reached[graph.edge_source], seconds)
    tail = np.where(twin >= 0, head[np.maximum(twin, 0)], 0.0)
    covered = np.minimum(1.0, head + tail)

    unit_intervals: dict[int, list[Interval]] = {}
    for unit in unit_snaps:
        ahead = unit.fraction + _reach(budget, float(seconds[unit.edge]))
        spans = unit_intervals.setdefault(unit.edge, [])
        spans.append((unit.fraction, min(1.0, ahead)))
        if unit.twin >= 0:
            spans.append((max(0.0, unit.fraction - _reach(budget, float(seconds[unit.twin]))), unit.fraction))
    merged: dict[int, tuple[Interval, ...]] = {}
    for edge, spans in unit_intervals.items():
        spans.append((0.0, float(head[edge])))
        spans.append((1.0 - float(tail[edge]), 1.0))
        merged[edge] = _union(spans)
        covered[edge] = sum(hi - lo for lo, hi in merged[edge])

    covered = np.where(canonical, covered, covered[np.where(twin >= 0, twin, ids)])
    metres = graph.edge_metres.astype(np.float64)
    total = float(metres[canonical].sum())
    share = float((covered * metres)[canonical].sum() / total) if total > 0 else 0.0
    return Coverage(
        minutes=minutes,
        share_of_road_length_reachable=min(1.0, max(0.0, share)),
        covered_fraction=covered,
        covered_edge_mask=covered >= 1.0 - 1e-9,
        head=head,
        tail=tail,
        unit_intervals=merged,
    )


def _junction_seconds(graph: RoadGraph, unit_snaps: Sequence[Snap], budget: float) -> F64:
    """Seconds from the nearest unit to every junction (inf beyond the budget), by one scipy Dijkstra."""
    n = graph.node_count
    if not unit_snaps:
        return np.full(n, np.inf)
    start = np.full(n, np.inf)
    for unit in unit_snaps:
        for leg in unit.exits:
            start[leg.node] = min(start[leg.node], leg.seconds)
    seeds = np.flatnonzero(start <= budget)
    if seeds.size == 0:
        return np.full(n, np.inf)
    offsets, targets, seconds = graph.cached("coverage-csr", lambda: _simple_csr(graph))
    indptr = np.concatenate((offsets, [offsets[-1] + seeds.size]))
    matrix = csr_matrix(
        (np.concatenate((seconds, start[seeds])), np.concatenate((targets, seeds)), indptr), shape=(n + 1, n + 1)
    )
    result = dijkstra(matrix, directed=True, indices=n, limit=budget)
    return np.asarray(result, dtype=np.float64)[:n]


def _simple_csr(graph: RoadGraph) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], F64]:
    """Forward CSR with parallel edges merged into the fastest one.

    scipy's csgraph routines assume no duplicate entries (with them, some loop forever in scipy 1.17).
    """
    source, target = graph.edge_source.astype(np.int64), graph.edge_target.astype(np.int64)
    order = np.lexsort((target, source))
    source, target, seconds = source[order], target[order], graph.edge_seconds[order].astype(np.float64)
    first = np.flatnonzero(np.concatenate(([True], (source[1:] != source[:-1]) | (target[1:] != target[:-1]))))
    fastest = np.minimum.reduceat(seconds, first)
    offsets = np.zeros(graph.node_count + 1, np.int64)
    offsets[1:] = np.cumsum(np.bincount(source[first], minlength=graph.node_count))
    return offsets, target[first], fastest


def _spare_fraction(spare: F64, seconds: F64) -> F64:
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(seconds > 0, spare / np.where(seconds > 0, seconds, 1.0), np.where(spare >= 0, 1.0, 0.0))
    return np.asarray(np.clip(np.nan_to_num(fraction, nan=0.0, neginf=0.0), 0.0, 1.0), dtype=np.float64)


def _reach(budget: float, seconds: float) -> float:
    return 1.0 if seconds <= 0 else min(1.0, budget / seconds)


def _union(spans: list[Interval]) -> tuple[Interval, ...]:
    merged: list[Interval] = []
    for lo, hi in sorted(span for span in spans if span[1] > span[0]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _gaps(covered: tuple[Interval, ...]) -> list[Interval]:
    gaps, at = [], 0.0
    for lo, hi in covered:
        if lo > at:
            gaps.append((at, lo))
        at = max(at, hi)
    if at < 1.0:
        gaps.append((at, 1.0))
    return gaps


def uncovered_geojson(graph: RoadGraph, found: Coverage, max_features: int = 2000) -> dict[str, Any]:
    """Uncovered road stretches as a GeoJSON FeatureCollection, one MultiLineString per road segment.

    The longest gaps come first and at most `max_features` are given, so a map layer stays light.
    """
    candidates = np.flatnonzero(graph.canonical_edges() & ~found.covered_edge_mask)
    missing = (1.0 - found.covered_fraction[candidates]) * graph.edge_metres[candidates]
    features = []
    for edge in candidates[np.argsort(-missing, kind="stable")][: max(0, max_features)].tolist():
        covered = found.unit_intervals.get(edge)
        if covered is None:
            covered = _union([(0.0, float(found.head[edge])), (1.0 - float(found.tail[edge]), 1.0)])
        gaps = _gaps(covered)
        lines = [[list(point) for point in graph.edge_part(edge, lo, hi)] for lo, hi in gaps]
        lines = [line if len(line) > 1 else line * 2 for line in lines if line]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "MultiLineString", "coordinates": lines},
                "properties": {
                    "edge": edge,
                    "way_id": int(graph.edge_way_id[edge]),
                    "uncovered_m": round(sum(hi - lo for lo, hi in gaps) * float(graph.edge_metres[edge]), 1),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
