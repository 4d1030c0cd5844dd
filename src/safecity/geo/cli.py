"""`import-roads`: turn a city's OSM extract into the saved road graph the dispatcher routes on.

Kept apart from `safecity.cli` so the command can be mounted under `safecity import` by the main CLI,
which passes its data directory; run alone it writes to `data/roads.graph.npz`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from safecity.geo.errors import GeoError
from safecity.geo.graph import RoadGraph
from safecity.geo.roads import build_road_graph

ROAD_GRAPH_FILE = "roads.graph.npz"

geo_app = typer.Typer(no_args_is_help=True, add_completion=False, help="geography: road graph")


@geo_app.callback()
def _group() -> None:
    """Geography: the road graph (a group, so that commands keep their names as more are added)."""


@dataclass(frozen=True)
class RoadImport:
    """What an import produced, for the command's report."""

    path: Path
    nodes: int
    edges: int
    road_km: float
    build_s: float
    save_s: float

    def summary(self) -> str:
        return (
            f"road graph {self.path}: {self.nodes} junctions, {self.edges} directed edges, "
            f"{self.road_km:.1f} km of road; built in {self.build_s:.2f} s, saved in {self.save_s:.2f} s"
        )


def default_graph_path(data_dir: Path) -> Path:
    """Where the platform keeps its road graph inside its data directory."""
    return data_dir / ROAD_GRAPH_FILE


def import_roads(extract: Path, out: Path) -> RoadImport:
    """Build the driving graph of `extract` (.osm.pbf) and save it to `out` (folders created)."""
    started = time.perf_counter()
    graph: RoadGraph = build_road_graph(extract)
    built = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    graph.save(out)
    saved = time.perf_counter()
    km = graph.road_length_m() / 1000
    return RoadImport(out, graph.node_count, graph.edge_count, km, built - started, saved - built)


@geo_app.command("import-roads")
def import_roads_command(
    file: Annotated[Path, typer.Argument(help="OpenStreetMap extract (.osm.pbf)", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="where to save the graph")] = Path("data") / ROAD_GRAPH_FILE,
) -> None:
    """Build the road graph from an OSM extract and save it."""
    try:
        report = import_roads(file, out)
    except (GeoError, RuntimeError) as exc:  # pyosmium reports unreadable files as RuntimeError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(report.summary())
