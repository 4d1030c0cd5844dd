"""WGS84 helpers: great-circle distance and bearing, bounding boxes, a local metric projection.

Everything outside `geo/` asks here instead of doing trigonometry by hand, so that one earth radius and
one argument order (latitude first, like people say it; GeoJSON output is the only place that flips to
lon/lat) hold everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer

EARTH_RADIUS_M = 6_371_008.8
"""Mean earth radius (IUGG): the sphere whose haversine error stays under 0.5 % anywhere."""

FloatArray = npt.NDArray[np.float64]


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points (degrees)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def haversine_m_array(lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike) -> FloatArray:
    """Vectorised `haversine_m` (broadcasting), for edge lengths of whole graphs at once."""
    p1, p2 = np.radians(np.asarray(lat1, dtype=np.float64)), np.radians(np.asarray(lat2, dtype=np.float64))
    dl = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a))), dtype=np.float64)


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, degrees clockwise from north in [0, 360)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def destination(lat: float, lon: float, bearing: float, distance_m: float) -> tuple[float, float]:
    """The point `distance_m` away along the great circle leaving at `bearing` degrees: (lat, lon)."""
    delta = distance_m / EARTH_RADIUS_M
    theta, p1, l1 = math.radians(bearing), math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(delta) + math.cos(p1) * math.sin(delta) * math.cos(theta))
    l2 = l1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(p1), math.cos(delta) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A latitude/longitude box (no antimeridian crossing: a city never needs one)."""

    south: float
    west: float
    north: float
    east: float

    @classmethod
    def around(cls, lats: npt.ArrayLike, lons: npt.ArrayLike) -> BoundingBox:
        """The smallest box holding all the points."""
        la, lo = np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64)
        if la.size == 0:
            raise ValueError("a bounding box needs at least one point")
        return cls(float(la.min()), float(lo.min()), float(la.max()), float(lo.max()))

    @property
    def centre(self) -> tuple[float, float]:
        """(lat, lon) of the middle of the box."""
        return (self.south + self.north) / 2, (self.west + self.east) / 2

    def contains(self, lat: float, lon: float) -> bool:
        return self.south <= lat <= self.north and self.west <= lon <= self.east

    def expanded(self, metres: float) -> BoundingBox:
        """The box grown by `metres` on every side (the longitude margin taken at the widest latitude)."""
        dlat = math.degrees(metres / EARTH_RADIUS_M)
        widest = max(abs(self.south), abs(self.north))
        dlon = math.degrees(metres / (EARTH_RADIUS_M * max(math.cos(math.radians(widest)), 1e-6)))
        return BoundingBox(
            max(-90.0, self.south - dlat), max(-180.0, self.west - dlon),
            min(90.0, self.north + dlat), min(180.0, self.east + dlon),
        )  # fmt: skip


class LocalProjection:
    """Azimuthal equidistant projection centred on a city, in metres.

    Near its centre (tens of kilometres) straight lines and Euclidean distances in this plane are within
    millimetres of the geodesic ones, which is what nearest-road search and area sums need; far from the
    centre distances stay exact only along lines through the centre.
    """

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = lat0, lon0
        local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat0:.9f} +lon_0={lon0:.9f} +datum=WGS84 +units=m +no_defs")
        self._forward = Transformer.from_crs(CRS.from_epsg(4326), local, always_xy=True)
        self._inverse = Transformer.from_crs(local, CRS.from_epsg(4326), always_xy=True)

    @classmethod
    def for_box(cls, box: BoundingBox) -> LocalProjection:
        return cls(*box.centre)

    def to_xy(self, lats: npt.ArrayLike, lons: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Project degrees to (x east, y north) metres."""
        x, y = self._forward.transform(np.asarray(lons, dtype=np.float64), np.asarray(lats, dtype=np.float64))
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def to_latlon(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Back from metres to (lat, lon) degrees."""
        lon, lat = self._inverse.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
