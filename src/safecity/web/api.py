"""Serves the dashboard pages and the offline base map.

The pages are public: they hold no data, only code, and log in against the API like any client.
The base map is cut from the city's extract, so it needs a login like any other data; MapLibre
fetches it itself, with the bearer token the page adds to each request (`transformRequest`).
The archive is read with HTTP range requests: the PMTiles client asks for a header, a directory
and then one tile's bytes at a time, never for the whole file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Header
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel

from safecity.api.deps import ServicesDep, allow, public
from safecity.api.problems import Problem
from safecity.config import Settings
from safecity.security import ALL_ROLES, Principal
from safecity.web import STATIC_DIR, basemap_path

router = APIRouter(tags=["web"])

PMTILES_TYPE = "application/vnd.pmtiles"
IMMUTABLE = "public, max-age=31536000, immutable"  # vite names assets by content hash
REVALIDATE = "no-cache"  # pages: always ask, so a new build is picked up at once
PAGES = {"index": "index.html", "tablet": "tablet.html"}
CHUNK = 64 * 1024
# The city the demo ships with, for a platform that has no base map yet.
FALLBACK_CENTER = (24.9384, 60.1699)
FALLBACK_ZOOM = 12
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Not left to the machine's mime.types: a module worker with the wrong type does not start.
ASSET_TYPES = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
    ".png": "image/png", ".woff2": "font/woff2", ".json": "application/json", ".map": "application/json",
}


class MapConfig(BaseModel):
    center: tuple[float, float]  # lon, lat
    zoom: float
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float] | None  # west, south, east, north
    basemap_url: str | None  # the offline archive, None until it is built
    tile_url: str | None  # an optional external raster layer ({z}/{x}/{y}); off unless configured
    attribution: str


def external_tile_url(settings: Settings) -> str | None:
    """The optional external tile source; unset keeps every request on the platform."""
    url = settings.map_tile_url
    return str(url) if url else None


def content_security_policy(settings: Settings) -> str:
    """The pages may talk to this origin only, plus the external tile host when one is configured."""
    extra = ""
    url = external_tile_url(settings)
    if url:
        parts = urlsplit(url)
        extra = f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: blob:{extra}; connect-src 'self'{extra}; worker-src 'self' blob:; "
        "child-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def _page(name: str, settings: Settings) -> FileResponse:
    path = STATIC_DIR / name
    if not path.is_file():
        raise Problem(404, f"the dashboard is not built ({name} missing): run `make install`")
    return FileResponse(path, media_type="text/html; charset=utf-8", headers={
        "Cache-Control": REVALIDATE,
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
    })


@router.get("/", dependencies=[public()], include_in_schema=False)
async def situation_centre(services: ServicesDep) -> FileResponse:
    """The situation centre; after login it becomes the audit view for auditors."""
    return _page(PAGES["index"], services.settings)


@router.get("/tablet", dependencies=[public()], include_in_schema=False)
async def field_tablet(services: ServicesDep) -> FileResponse:
    return _page(PAGES["tablet"], services.settings)


@router.get("/{page}.html", dependencies=[public()], include_in_schema=False)
async def page_by_name(page: str, services: ServicesDep) -> FileResponse:
    if page not in PAGES:
        raise Problem(404, f"no page {page}.html")
    return _page(PAGES[page], services.settings)


@router.get("/assets/{path:path}", dependencies=[public()], include_in_schema=False)
async def asset(path: str) -> FileResponse:
    root = (STATIC_DIR / "assets").resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise Problem(404, f"no asset {path}")
    return FileResponse(target, media_type=ASSET_TYPES.get(target.suffix, "application/octet-stream"),
                        headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"})


@router.get("/api/v1/map/config")
async def map_config(services: ServicesDep, principal: Annotated[Principal, allow(ALL_ROLES)]) -> MapConfig:
    """Where the map opens (the loaded city), and which base layers it may draw."""
    path = basemap_path(services.settings.data_dir)
    tile_url = external_tile_url(services.settings)
    if not path.is_file():
        return MapConfig(center=FALLBACK_CENTER, zoom=FALLBACK_ZOOM, minzoom=0, maxzoom=22, bounds=None,
                         basemap_url=None, tile_url=tile_url, attribution="")
    from safecity.geo.basemap import read_header  # osmium and shapely load only where the map is asked for

    header = await anyio.to_thread.run_sync(read_header, path)
    return MapConfig(
        center=(header["center_lon_e7"] / 1e7, header["center_lat_e7"] / 1e7),
        zoom=header["center_zoom"],
        minzoom=header["min_zoom"],
        maxzoom=header["max_zoom"],
        bounds=(header["min_lon_e7"] / 1e7, header["min_lat_e7"] / 1e7,
                header["max_lon_e7"] / 1e7, header["max_lat_e7"] / 1e7),
        basemap_url="/api/v1/map/basemap.pmtiles",
        tile_url=tile_url,
        attribution="© OpenStreetMap contributors",
    )


@router.get("/api/v1/map/basemap.pmtiles", response_model=None)
async def basemap(
    services: ServicesDep,
    principal: Annotated[Principal, allow(ALL_ROLES)],
    range_: Annotated[str | None, Header(alias="range")] = None,
) -> FileResponse | StreamingResponse:
    """The offline base map as one PMTiles archive; `Range: bytes=…` answers 206 with those bytes."""
    path = basemap_path(services.settings.data_dir)
    try:
        stat = await anyio.to_thread.run_sync(path.stat)
    except FileNotFoundError:
        raise Problem(404, "no base map yet: it is cut from the OSM extract on first start") from None
    size = stat.st_size
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",  # behind a login: no shared caches
        "ETag": f'"{stat.st_mtime_ns:x}-{size:x}"',
    }
    if range_ is None:
        return FileResponse(path, media_type=PMTILES_TYPE, headers=headers, stat_result=stat)
    start, end = byte_range(range_, size)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(_read(path, start, end), status_code=206, media_type=PMTILES_TYPE, headers=headers)


def byte_range(header: str, size: int) -> tuple[int, int]:
    """One `bytes=` range of a file of `size` bytes, as inclusive (first, last); 416 when it cannot be served.

    Several ranges in one request are refused too: the PMTiles client never asks for them."""
    match = _RANGE.match(header.strip())
    unsatisfiable = Problem(416, f"cannot serve range {header[:80]!r} of {size} bytes",
                            headers={"Content-Range": f"bytes */{size}"})
    if match is None or size == 0:
        raise unsatisfiable
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        if last == "" or int(last) == 0:
            raise unsatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or start > end:
        raise unsatisfiable
    return start, end


async def _read(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        await handle.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = await handle.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
