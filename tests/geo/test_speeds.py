from __future__ import annotations

import math

import pytest

from safecity.geo.speeds import DEFAULT_PROFILE, MPH_KMH, NO_LIMIT, WALK_KMH, DrivingProfile, parse_maxspeed


@pytest.mark.parametrize(
    ("value", "kmh"),
    [
        ("50", 50.0),
        ("50 km/h", 50.0),
        ("50kmh", 50.0),
        ("30 mph", 30 * MPH_KMH),
        ("30mph", 30 * MPH_KMH),
        ("10 knots", 18.52),
        ("RU:urban", 60.0),
        ("RU:rural", 90.0),
        ("DE:urban", 50.0),
        ("FI:rural", 80.0),
        ("GB:nsl_single", 60 * MPH_KMH),
        ("XX:urban", 50.0),
        ("DE:zone30", 30.0),
        ("DE:zone:20", 20.0),
        ("walk", WALK_KMH),
        ("none", NO_LIMIT),
        ("50;30", 50.0),
        ("40.5", 40.5),
    ],
)
def test_maxspeed_values_become_kmh(value: str, kmh: float) -> None:
    assert parse_maxspeed(value) == pytest.approx(kmh)


@pytest.mark.parametrize("value", [None, "", "signals", "variable", "fast", "0", "XX:nonsense"])
def test_unusable_maxspeed_says_nothing(value: str | None) -> None:
    assert parse_maxspeed(value) is None


def test_speed_falls_back_to_the_class_default() -> None:
    assert DEFAULT_PROFILE.speeds({"highway": "residential"}, "residential") == (30.0, 30.0)
    assert DEFAULT_PROFILE.speeds({"highway": "residential", "maxspeed": "signals"}, "residential") == (30.0, 30.0)
    assert DEFAULT_PROFILE.speeds({"highway": "motorway", "maxspeed": "none"}, "motorway") == (100.0, 100.0)


def test_directional_maxspeed_wins_over_the_common_one() -> None:
    tags = {"highway": "primary", "maxspeed": "50", "maxspeed:backward": "30"}
    assert DEFAULT_PROFILE.speeds(tags, "primary") == (50.0, 30.0)


def test_speed_factor_scales_and_minimum_holds() -> None:
    profile = DrivingProfile(speed_factor=0.5, min_speed_kmh=6.0)
    assert profile.speeds({"maxspeed": "60"}, "primary") == (30.0, 30.0)
    assert profile.speeds({"maxspeed": "walk"}, "living_street") == (6.0, 6.0)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"highway": "residential"}, "residential"),
        ({"highway": "footway"}, None),
        ({"highway": "cycleway"}, None),
        ({"highway": "steps"}, None),
        ({"highway": "path"}, None),
        ({"highway": "pedestrian"}, None),
        ({"highway": "track"}, None),
        ({"highway": "service", "area": "yes"}, None),
        ({"highway": "service", "access": "private"}, None),
        ({"highway": "service", "access": "no"}, None),
        ({"highway": "primary", "motor_vehicle": "no"}, None),
        ({"highway": "service", "access": "no", "motor_vehicle": "yes"}, "service"),
        ({"highway": "service", "access": "destination"}, "service"),
        ({"highway": "unclassified", "motorcar": "private", "access": "yes"}, None),
    ],
)
def test_which_ways_are_driven(tags: dict[str, str], expected: str | None) -> None:
    assert DEFAULT_PROFILE.highway_class(tags) == expected


def test_tracks_can_be_allowed_by_profile() -> None:
    profile = DrivingProfile(speeds_kmh={"track": 15.0})
    assert profile.highway_class({"highway": "track"}) == "track"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"highway": "residential"}, (True, True)),
        ({"highway": "residential", "oneway": "yes"}, (True, False)),
        ({"highway": "residential", "oneway": "1"}, (True, False)),
        ({"highway": "residential", "oneway": "true"}, (True, False)),
        ({"highway": "residential", "oneway": "-1"}, (False, True)),
        ({"highway": "residential", "junction": "roundabout"}, (True, False)),
        ({"highway": "residential", "junction": "roundabout", "oneway": "no"}, (True, True)),
        ({"highway": "motorway"}, (True, False)),
        ({"highway": "motorway", "oneway": "no"}, (True, True)),
        ({"highway": "residential", "oneway": "reversible"}, (False, False)),
    ],
)
def test_oneway_semantics(tags: dict[str, str], expected: tuple[bool, bool]) -> None:
    assert DEFAULT_PROFILE.directions(tags, tags["highway"]) == expected


def test_no_limit_is_infinite() -> None:
    assert math.isinf(NO_LIMIT)
