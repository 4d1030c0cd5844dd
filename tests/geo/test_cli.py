from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from safecity.geo.cli import default_graph_path, geo_app
from safecity.geo.graph import RoadGraph
from safecity.geo.roads import demo_extract_path


def test_import_roads_saves_the_graph_and_reports(helsinki: RoadGraph, tmp_path: Path) -> None:
    out = default_graph_path(tmp_path / "data")
    result = CliRunner().invoke(geo_app, ["import-roads", str(demo_extract_path()), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{helsinki.node_count} junctions" in result.output and "km of road" in result.output
    loaded = RoadGraph.load(out)
    assert np.array_equal(loaded.edge_seconds, helsinki.edge_seconds)


def test_import_roads_refuses_a_file_that_is_no_extract(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.osm.pbf"
    bogus.write_bytes(b"\x00\x01 definitely not protobuf")
    result = CliRunner().invoke(geo_app, ["import-roads", str(bogus), "--out", str(tmp_path / "g.npz")])
    assert result.exit_code == 1
    assert "error" in result.output
    assert not (tmp_path / "g.npz").exists()
