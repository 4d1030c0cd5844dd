"""Road travel times for dispatch: where the graph comes from, units placed on it, ETAs and routes.

All geometry is `geo`'s: units and incidents are snapped onto the road graph (`geo.routing.snap`),
ETAs of every candidate come from one reverse search from the incident (`travel_times_to`), and the
routes drawn for the dispatcher from `geo.routing.route`. This module only caches and glues.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safecity.dispatch.logic import RoutingUnavailable
from safecity.geo.coverage import coverage, uncovered_geojson
from safecity.geo.errors import GeoError
from safecity.geo.graph import RoadGraph
from safecity.geo.roads import build_road_graph, demo_extract_path
from safecity.geo.routing import Snap, route, route_geojson, snap, travel_times_to

log = logging.getLogger(__name__)

GraphProvider = Callable[[], Awaitable[RoadGraph]]

MAX_SNAP_M = 1_000.0
"""A point farther than this from every road is outside the graph's city: no road ETA for it."""


class RoadGraphFile:
    """The road graph, loaded once on first use: from `path` if it exists, else built from the OSM
    extract (by default the demo Helsinki extract) and saved there for the next start."""

    def __init__(self, path: Path, extract: Path | None = None) -> None:
        self.path = path
        self.extract = extract
        self._graph: RoadGraph | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> RoadGraph:
        if self._graph is not None:
            return self._graph
        async with self._lock:
            if self._graph is None:
                try:
                    self._graph = await asyncio.to_thread(self._load_or_build)
                except (GeoError, OSError) as exc:
                    raise RoutingUnavailable(f"no road graph: {exc}") from exc
            return self._graph

    def _load_or_build(self) -> RoadGraph:
        if self.path.is_file():
            return RoadGraph.load(self.path)
        extract = self.extract or demo_extract_path()
        graph = build_road_graph(extract)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        graph.save(self.path)
        log.info("road graph cached path=%s extract=%s nodes=%d", self.path, extract, graph.node_count)
        return graph


class SnapCache:
    """Unit positions placed on the road graph, kept per unit and redone only when the unit moves.

    This is the candidates' spatial index: each unit sits on a road edge, so the incident's one
    reverse search meets the units as it settles their edges, nearest by road first.
    """

    def __init__(self) -> None:
        self._graph: RoadGraph | None = None
        self._snaps: dict[str, tuple[float, float, Snap]] = {}

    def get(self, graph: RoadGraph, unit_id: str, lat: float, lon: float) -> Snap:
        if graph is not self._graph:
            self._graph, self._snaps = graph, {}
        cached = self._snaps.get(unit_id)
        if cached is not None and cached[0] == lat and cached[1] == lon:
            return cached[2]
        placed = snap(graph, lat, lon)
        self._snaps[unit_id] = (lat, lon, placed)
        return placed


@dataclass(frozen=True, slots=True)
class Etas:
    target: Snap
    seconds: dict[str, float]
    sources: dict[str, Snap]


def road_etas(
    graph: RoadGraph,
    cache: SnapCache,
    lat: float,
    lon: float,
    positions: Mapping[str, tuple[float, float]],
    *,
    cutoff_s: float | None = None,
    k: int | None = None,
) -> Etas:
    """Seconds by road from each unit's position to (lat, lon); units off the road network are left out."""
    target = snap(graph, lat, lon)
    if target.distance_m > MAX_SNAP_M:
        raise RoutingUnavailable(f"the place is {target.distance_m:.0f} m from the nearest road of the graph")
    sources = {}
    for unit_id, (ulat, ulon) in positions.items():
        placed = cache.get(graph, unit_id, ulat, ulon)
        if placed.distance_m <= MAX_SNAP_M:
            sources[unit_id] = placed
    seconds = travel_times_to(graph, target, sources, cutoff_s=cutoff_s, k=k)
    return Etas(target, seconds, sources)


def route_features(graph: RoadGraph, etas: Etas, unit_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The route of each unit to the place, as a GeoJSON Feature, for the dispatcher's map."""
    out: dict[str, dict[str, Any]] = {}
    for unit_id in unit_ids:
        source = etas.sources.get(unit_id)
        if source is None:
            continue
        try:
            feature = route_geojson(route(graph, source, etas.target))
        except GeoError:  # pragma: no cover - the graph is strongly connected
            continue
        feature["properties"]["unit_id"] = unit_id
        out[unit_id] = feature
    return out


@dataclass(frozen=True, slots=True)
class CoverageMap:
    minutes: float
    units: int
    share: float
    uncovered: dict[str, Any]  # GeoJSON FeatureCollection of road stretches no unit reaches in time


def coverage_map(
    graph: RoadGraph, cache: SnapCache, positions: Mapping[str, tuple[float, float]], minutes: float
) -> CoverageMap:
    """The share of the road network the given units reach within `minutes`, and the gaps to draw."""
    snaps = [cache.get(graph, unit_id, lat, lon) for unit_id, (lat, lon) in positions.items()]
    snaps = [s for s in snaps if s.distance_m <= MAX_SNAP_M]
    found = coverage(graph, snaps, minutes)
    return CoverageMap(minutes, len(snaps), found.share_of_road_length_reachable, uncovered_geojson(graph, found))
