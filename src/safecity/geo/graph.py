"""The driving graph as plain numpy arrays (CSR), its binary file format, and assembly from road segments.

Why arrays and not objects: a city of half a million junctions then loads in milliseconds with
`numpy.load`, takes tens of megabytes, and scipy's graph routines read it as is. Why both directions
stored: travel times *to* an incident are found by one search on the reverse graph from the incident.

A two-way road segment becomes two edges that are each other's `edge_twin`; its intermediate geometry is
stored once, on the lower-numbered of the pair (the canonical edge), in that edge's direction. Edges are
turn-free: no turn restrictions and no turn penalties are modelled.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

from safecity.geo.coords import BoundingBox, haversine_m_array
from safecity.geo.errors import GraphFormatError, NoDrivableRoadsError

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]
T = TypeVar("T")

FORMAT = "safecity-roadgraph"
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class RoadGraph:
    """A strongly connected, turn-free driving graph; node and edge ids are array indexes.

    Forward CSR: the edges leaving node `n` are `edge_offsets[n]:edge_offsets[n+1]`. Reverse CSR: the edges
    entering `n` are `rev_edge[rev_offsets[n]:rev_offsets[n+1]]`, coming from `rev_source[...]`. Edge geometry
    lists only the vertices *between* the two end nodes.
    """

    node_lat: F64
    node_lon: F64
    node_osm_id: I64
    edge_offsets: I64
    edge_source: I32
    edge_target: I32
    edge_seconds: F32
    edge_metres: F32
    edge_twin: I32
    edge_way_id: I64
    geom_offsets: I64
    geom_lat: F64
    geom_lon: F64
    rev_offsets: I64
    rev_source: I32
    rev_edge: I32
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def node_count(self) -> int:
        return int(self.node_lat.shape[0])

    @property
    def edge_count(self) -> int:
        return int(self.edge_target.shape[0])

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Every array by field name: what `save` writes and what equality of two graphs means."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """Derived structures (search lists, snapping index) built once per graph on first use."""
        if key not in self._cache:
            self._cache[key] = build()
        return cast(T, self._cache[key])

    def canonical_edges(self) -> Bools:
        """One edge per physical road segment: one-way edges, and the lower id of each two-way pair."""
        ids = np.arange(self.edge_count, dtype=np.int32)
        return np.asarray((self.edge_twin < 0) | (self.edge_twin > ids), dtype=np.bool_)

    def road_length_m(self) -> float:
        """Total length of the road network, a two-way street counted once."""
        return float(self.edge_metres[self.canonical_edges()].astype(np.float64).sum())

    def bounding_box(self) -> BoundingBox:
        return BoundingBox.around(self.node_lat, self.node_lon)

    def edge_polyline(self, edge: int) -> tuple[F64, F64]:
        """(lats, lons) of an edge from its source node to its target node, intermediate vertices included."""
        twin = int(self.edge_twin[edge])
        stored, flip = (twin, True) if 0 <= twin < edge else (edge, False)
        lo, hi = int(self.geom_offsets[stored]), int(self.geom_offsets[stored + 1])
        mid_lat, mid_lon = self.geom_lat[lo:hi], self.geom_lon[lo:hi]
        if flip:
            mid_lat, mid_lon = mid_lat[::-1], mid_lon[::-1]
        s, t = int(self.edge_source[edge]), int(self.edge_target[edge])
        lats = np.concatenate(([self.node_lat[s]], mid_lat, [self.node_lat[t]]))
        lons = np.concatenate(([self.node_lon[s]], mid_lon, [self.node_lon[t]]))
        return lats, lons

    def edge_part(self, edge: int, lo: float, hi: float) -> list[tuple[float, float]]:
        """(lon, lat) points of an edge between two fractions of its length (0 = source end), for drawing."""
        lats, lons = self.edge_polyline(edge)
        along = np.concatenate(([0.0], np.cumsum(haversine_m_array(lats[:-1], lons[:-1], lats[1:], lons[1:]))))
        total = float(along[-1])
        if total <= 0.0:
            return [(float(lons[0]), float(lats[0]))]
        inner = along[(along > lo * total) & (along < hi * total)]
        marks = np.concatenate(([lo * total], inner, [hi * total]))
        xs, ys = np.interp(marks, along, lons), np.interp(marks, along, lats)
        return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the graph as an uncompressed `.npz` (no pickles), atomically via a temporary file."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("wb") as out:
            arrays: dict[str, Any] = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION)}
            arrays.update(self.arrays())
            np.savez(out, **arrays)
        tmp.replace(target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RoadGraph:
        """Read a graph written by `save`; refuses other files and other format versions."""
        expected = {f.name: f.type for f in fields(cls) if not f.name.startswith("_")}
        try:
            with np.load(path, allow_pickle=False) as data:
                if "format" not in data.files or str(data["format"]) != FORMAT:
                    raise GraphFormatError(f"{path}: not a safecity road graph")
                version = int(data["format_version"])
                if version != FORMAT_VERSION:
                    raise GraphFormatError(f"{path}: format version {version}, this code reads {FORMAT_VERSION}")
                missing = sorted(set(expected) - set(data.files))
                if missing:
                    raise GraphFormatError(f"{path}: missing arrays {missing}")
                arrays = {name: data[name] for name in expected}
        except (OSError, ValueError) as exc:
            raise GraphFormatError(f"{path}: {exc}") from exc
        graph = cls(**arrays)
        _check_dtypes(graph, path)
        return graph


_DTYPES = {
    "node_lat": np.float64, "node_lon": np.float64, "node_osm_id": np.int64, "edge_offsets": np.int64,
    "edge_source": np.int32, "edge_target": np.int32, "edge_seconds": np.float32, "edge_metres": np.float32,
    "edge_twin": np.int32, "edge_way_id": np.int64, "geom_offsets": np.int64, "geom_lat": np.float64,
    "geom_lon": np.float64, "rev_offsets": np.int64, "rev_source": np.int32, "rev_edge": np.int32,
}  # fmt: skip


def _check_dtypes(graph: RoadGraph, path: str | os.PathLike[str]) -> None:
    for name, array in graph.arrays().items():
        if array.dtype != _DTYPES[name] or array.ndim != 1:
            raise GraphFormatError(f"{path}: array {name} has dtype {array.dtype}, shape {array.shape}")
    n, e = graph.node_count, graph.edge_count
    if graph.edge_offsets.shape[0] != n + 1 or graph.rev_offsets.shape[0] != n + 1 or int(graph.edge_offsets[-1]) != e:
        raise GraphFormatError(f"{path}: inconsistent node/edge counts")
    if graph.geom_offsets.shape[0] != e + 1 or int(graph.geom_offsets[-1]) != graph.geom_lat.shape[0]:
        raise GraphFormatError(f"{path}: inconsistent edge geometry")


@dataclass(frozen=True)
class Segments:
    """Road pieces between two graph nodes, before they become directed edges.

    `geom_offsets` indexes `geom_lat/geom_lon` (vertices strictly between `u` and `v`, in u→v order).
    """

    u: I64
    v: I64
    forward: Bools
    backward: Bools
    kmh_forward: F64
    kmh_backward: F64
    metres: F64
    way_id: I64
    geom_offsets: I64
    geom_lat: F64
    geom_lon: F64


def assemble(node_lat: F64, node_lon: F64, node_osm_id: I64, seg: Segments) -> RoadGraph:
    """Directed edges from segments, cut down to the largest strongly connected component.

    Why only that component: a unit or incident snapped onto an island (a car park whose exit lies outside
    the extract, a one-way fragment cut by the extract border) would have no answer at all; dropping
    islands makes every snapped point reach every other.
    """
    fw, bw = np.flatnonzero(seg.forward), np.flatnonzero(seg.backward)
    src = np.concatenate((seg.u[fw], seg.v[bw]))
    dst = np.concatenate((seg.v[fw], seg.u[bw]))
    piece = np.concatenate((fw, bw))
    flipped = np.concatenate((np.zeros(fw.size, np.bool_), np.ones(bw.size, np.bool_)))
    kmh = np.concatenate((seg.kmh_forward[fw], seg.kmh_backward[bw]))
    slot_fw = np.full(seg.u.size, -1, np.int64)
    slot_bw = np.full(seg.u.size, -1, np.int64)
    slot_fw[fw] = np.arange(fw.size)
    slot_bw[bw] = fw.size + np.arange(bw.size)
    twin = np.concatenate((slot_bw[fw], slot_fw[bw]))
    if src.size == 0:
        raise NoDrivableRoadsError("no drivable road segment")

    n = node_lat.size
    adjacency = csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n, n))
    _, labels = connected_components(adjacency, directed=True, connection="strong")
    labels = np.asarray(labels)
    keep_node = labels == np.argmax(np.bincount(labels))
    new_node = np.cumsum(keep_node) - 1
    kept = np.flatnonzero(keep_node[src] & keep_node[dst])
    order = kept[np.argsort(new_node[src[kept]], kind="stable")]
    position = np.full(src.size, -1, np.int64)
    position[order] = np.arange(order.size)
    edge_twin = np.where(twin[order] >= 0, position[np.maximum(twin[order], 0)], -1)

    edge_source = new_node[src[order]]
    edge_target = new_node[dst[order]]
    node_count = int(keep_node.sum())
    edge_offsets = np.zeros(node_count + 1, np.int64)
    edge_offsets[1:] = np.cumsum(np.bincount(edge_source, minlength=node_count))
    metres = seg.metres[piece[order]]
    seconds = metres / (kmh[order] / 3.6)

    geom_offsets, geom_index = _edge_geometry(seg.geom_offsets, piece[order], flipped[order], edge_twin)
    rev_edge = np.argsort(edge_target, kind="stable")
    rev_offsets = np.zeros(node_count + 1, np.int64)
    rev_offsets[1:] = np.cumsum(np.bincount(edge_target, minlength=node_count))
    return RoadGraph(
        node_lat=np.ascontiguousarray(node_lat[keep_node], np.float64),
        node_lon=np.ascontiguousarray(node_lon[keep_node], np.float64),
        node_osm_id=np.ascontiguousarray(node_osm_id[keep_node], np.int64),
        edge_offsets=edge_offsets,
        edge_source=edge_source.astype(np.int32),
        edge_target=edge_target.astype(np.int32),
        edge_seconds=seconds.astype(np.float32),
        edge_metres=metres.astype(np.float32),
        edge_twin=edge_twin.astype(np.int32),
        edge_way_id=seg.way_id[piece[order]].astype(np.int64),
        geom_offsets=geom_offsets,
        geom_lat=seg.geom_lat[geom_index],
        geom_lon=seg.geom_lon[geom_index],
        rev_offsets=rev_offsets,
        rev_source=edge_source[rev_edge].astype(np.int32),
        rev_edge=rev_edge.astype(np.int32),
    )


def _edge_geometry(seg_offsets: I64, piece: I64, flipped: Bools, twin: I64) -> tuple[I64, I64]:
    """Offsets per edge and the gather index into the segment vertices, stored on canonical edges only."""
    ids = np.arange(piece.size)
    canonical = (twin < 0) | (twin > ids)
    start = seg_offsets[piece]
    count = np.where(canonical, seg_offsets[piece + 1] - start, 0)
    offsets = np.zeros(piece.size + 1, np.int64)
    offsets[1:] = np.cumsum(count)
    owner = np.repeat(ids, count)
    within = np.arange(int(offsets[-1])) - offsets[:-1][owner]
    index = np.where(flipped[owner], start[owner] + count[owner] - 1 - within, start[owner] + within)
    return offsets, index.astype(np.int64)
