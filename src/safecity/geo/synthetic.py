"""A large made-up city for tests and benchmarks, built in seconds with numpy.

Why not only real data: the shipped Helsinki extract is a few thousand junctions, while the dispatch
latency target is set for a city of half a million. The synthetic city is a jittered street grid with the
traits that make routing hard: fast arterials every tenth street and an expressway every fortieth, slow
residential streets, one-way residential streets and missing links (dead ends, blocks without through road).
"""

from __future__ import annotations

import math

import numpy as np

from safecity.geo.coords import LocalProjection, haversine_m_array
from safecity.geo.errors import NoDrivableRoadsError
from safecity.geo.graph import RoadGraph, Segments, assemble

ARTERIAL_EVERY = 10
EXPRESSWAY_EVERY = 40
ARTERIAL_KMH = 60.0
EXPRESSWAY_KMH = 80.0
RESIDENTIAL_KMH = (30.0, 40.0)
ONEWAY_SHARE = 0.12
MISSING_SHARE = 0.06


def synthetic_city(
    nodes: int, seed: int, *, centre: tuple[float, float] = (60.17, 24.94), spacing_m: float = 110.0
) -> RoadGraph:
    """A street grid of about `nodes` junctions around `centre` (lat, lon); deterministic for a `seed`.

    The graph keeps the largest strongly connected component, so it has a few per cent fewer nodes.
    """
    if nodes < 4:
        raise NoDrivableRoadsError("a synthetic city needs at least 4 junctions")
    rng = np.random.default_rng(seed)
    cols = math.ceil(math.sqrt(nodes))
    rows = math.ceil(nodes / cols)
    ids = np.arange(rows * cols).reshape(rows, cols)
    row_of, col_of = np.divmod(np.arange(rows * cols), cols)
    jitter = np.clip(rng.normal(0.0, 0.12 * spacing_m, (2, rows * cols)), -0.3 * spacing_m, 0.3 * spacing_m)
    x = (col_of - cols / 2) * spacing_m + jitter[0]
    y = (row_of - rows / 2) * spacing_m + jitter[1]
    lat, lon = LocalProjection(*centre).to_latlon(x, y)

    horizontal_u, horizontal_v = ids[:, :-1].ravel(), ids[:, 1:].ravel()
    vertical_u, vertical_v = ids[:-1, :].ravel(), ids[1:, :].ravel()
    u = np.concatenate((horizontal_u, vertical_u))
    v = np.concatenate((horizontal_v, vertical_v))
    line = np.concatenate((row_of[horizontal_u], col_of[vertical_u]))  # the street a segment belongs to
    kmh = np.where(
        line % EXPRESSWAY_EVERY == 0,
        EXPRESSWAY_KMH,
        np.where(line % ARTERIAL_EVERY == 0, ARTERIAL_KMH, rng.choice(RESIDENTIAL_KMH, u.size)),
    )
    residential = line % ARTERIAL_EVERY != 0
    present = (u < nodes) & (v < nodes) & ~(residential & (rng.random(u.size) < MISSING_SHARE))
    oneway = residential & (rng.random(u.size) < ONEWAY_SHARE)
    flip = rng.random(u.size) < 0.5
    forward = ~oneway | ~flip
    backward = ~oneway | flip

    u, v, kmh, forward, backward = u[present], v[present], kmh[present], forward[present], backward[present]
    segments = Segments(
        u=u.astype(np.int64),
        v=v.astype(np.int64),
        forward=forward,
        backward=backward,
        kmh_forward=kmh.astype(np.float64),
        kmh_backward=kmh.astype(np.float64),
        metres=haversine_m_array(lat[u], lon[u], lat[v], lon[v]),
        way_id=np.full(u.size, -1, np.int64),
        geom_offsets=np.zeros(u.size + 1, np.int64),
        geom_lat=np.zeros(0, np.float64),
        geom_lon=np.zeros(0, np.float64),
    )
    return assemble(lat, lon, np.arange(lat.size, dtype=np.int64), segments)
