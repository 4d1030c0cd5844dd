"""The real Helsinki extract, built into a road graph once per test session."""

from __future__ import annotations

import pytest

from safecity.geo.graph import RoadGraph
from safecity.geo.roads import build_road_graph, demo_extract_path


@pytest.fixture(scope="session")
def helsinki() -> RoadGraph:
    return build_road_graph(demo_extract_path())
