from __future__ import annotations

import math

import numpy as np
import pytest

from safecity.geo.coords import (
    BoundingBox,
    LocalProjection,
    bearing_deg,
    destination,
    haversine_m,
    haversine_m_array,
)


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert haversine_m(60.0, 25.0, 61.0, 25.0) == pytest.approx(111_195, rel=1e-4)


def test_haversine_is_symmetric_and_zero_on_itself() -> None:
    assert haversine_m(60.17, 24.94, 60.17, 24.94) == 0.0
    assert haversine_m(60.17, 24.94, 59.44, 24.75) == pytest.approx(haversine_m(59.44, 24.75, 60.17, 24.94))


def test_haversine_array_matches_scalar() -> None:
    lat1, lon1 = np.array([60.17, 0.0, -33.9]), np.array([24.94, 0.0, 151.2])
    lat2, lon2 = np.array([59.44, 0.0, 51.5]), np.array([24.75, 180.0, -0.12])
    expected = [haversine_m(*args) for args in zip(lat1, lon1, lat2, lon2, strict=True)]
    assert haversine_m_array(lat1, lon1, lat2, lon2).tolist() == pytest.approx(expected)


@pytest.mark.parametrize(
    ("lat2", "lon2", "expected"), [(61.0, 25.0, 0.0), (60.0, 25.1, 90.0), (59.0, 25.0, 180.0), (60.0, 24.9, 270.0)]
)
def test_bearing_points_to_the_compass(lat2: float, lon2: float, expected: float) -> None:
    assert bearing_deg(60.0, 25.0, lat2, lon2) == pytest.approx(expected, abs=0.1)


def test_destination_goes_the_distance_in_the_bearing() -> None:
    lat, lon = destination(60.17, 24.94, 45.0, 1_000.0)
    assert haversine_m(60.17, 24.94, lat, lon) == pytest.approx(1_000.0, rel=1e-9)
    assert bearing_deg(60.17, 24.94, lat, lon) == pytest.approx(45.0, abs=1e-6)


def test_bounding_box_contains_its_points_and_grows() -> None:
    box = BoundingBox.around([60.1, 60.2], [24.8, 25.0])
    assert box.contains(60.15, 24.9) and not box.contains(60.3, 24.9)
    assert box.centre == pytest.approx((60.15, 24.9))
    bigger = box.expanded(1_000.0)
    assert haversine_m(box.south, 24.9, bigger.south, 24.9) == pytest.approx(1_000.0, rel=1e-6)
    assert bigger.contains(box.north, box.east)
    with pytest.raises(ValueError):
        BoundingBox.around([], [])


def test_local_projection_keeps_city_distances() -> None:
    projection = LocalProjection(60.17, 24.94)
    lats, lons = np.array([60.17, 60.18, 60.16]), np.array([24.94, 24.96, 24.92])
    x, y = projection.to_xy(lats, lons)
    assert x[0] == pytest.approx(0.0, abs=1e-6) and y[0] == pytest.approx(0.0, abs=1e-6)
    planar = math.hypot(x[1] - x[2], y[1] - y[2])
    assert planar == pytest.approx(haversine_m(60.18, 24.96, 60.16, 24.92), rel=5e-3)  # ellipsoid vs sphere
    back_lat, back_lon = projection.to_latlon(x, y)
    assert back_lat.tolist() == pytest.approx(lats.tolist(), abs=1e-9)
    assert back_lon.tolist() == pytest.approx(lons.tolist(), abs=1e-9)
