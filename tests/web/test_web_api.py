"""The dashboard's pages and the base map over HTTP: caching, ranges, and who may fetch what."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safecity.api.problems import Problem
from safecity.geo.basemap import build_basemap, default_extract
from safecity.security import Role
from safecity.web import STATIC_DIR, basemap_path
from safecity.web.api import byte_range
from tests.api.conftest import RunningApi, api_settings, running_api


@pytest.fixture(scope="module")
def basemap_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extract = default_extract()
    assert extract is not None
    out = tmp_path_factory.mktemp("basemap") / "basemap.pmtiles"
    build_basemap(extract, out, minzoom=12, maxzoom=14)
    return out


@pytest.fixture
async def web(tmp_path: Path, basemap_file: Path) -> AsyncIterator[RunningApi]:
    settings = api_settings(tmp_path)
    settings.ensure_data_dir()
    shutil.copyfile(basemap_file, basemap_path(settings.data_dir))
    async with running_api(settings) as running:
        yield running


def built() -> None:
    assert (STATIC_DIR / "index.html").is_file(), "the dashboard is not built: run `make install` (npm run build)"


async def test_pages_are_public_revalidated_and_talk_only_to_the_platform(web: RunningApi) -> None:
    built()
    for path in ("/", "/index.html", "/tablet", "/tablet.html"):
        answer = await web.client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-cache"
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self';" in policy
        assert "http" not in policy  # no external host unless a tile URL is configured
    assert (await web.client.get("/nothing.html")).status_code == 404


async def test_assets_are_cached_for_good_and_typed(web: RunningApi) -> None:
    built()
    names = sorted(p.name for p in (STATIC_DIR / "assets").iterdir())
    script = next(n for n in names if n.endswith(".js"))
    worker = next(n for n in names if n.endswith(".mjs"))
    for name in (script, worker):
        answer = await web.client.get(f"/assets/{name}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/javascript")  # a module worker needs exactly this
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_assets_outside_the_build_are_refused(web: RunningApi) -> None:
    for path in ("/assets/..%2F..%2Fapi.py", "/assets/%2E%2E/%2E%2E/web/api.py", "/assets/nope.js"):
        assert (await web.client.get(path)).status_code == 404, path


async def test_the_base_map_needs_a_login(web: RunningApi) -> None:
    answer = await web.client.get("/api/v1/map/basemap.pmtiles", headers={"Range": "bytes=0-126"})
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_the_base_map_is_read_by_byte_ranges(web: RunningApi, basemap_file: Path) -> None:
    whole = basemap_file.read_bytes()
    size = len(whole)
    auth = web.auth(Role.FIELD_UNIT)  # every role draws the map
    cases = (("bytes=0-126", 0, 126), ("bytes=100-", 100, size - 1), ("bytes=-10", size - 10, size - 1),
             ("bytes=5-99999999", 5, size - 1))
    for asked, first, last in cases:
        answer = await web.client.get("/api/v1/map/basemap.pmtiles", headers={**auth, "Range": asked})
        assert answer.status_code == 206, asked
        assert answer.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert answer.headers["accept-ranges"] == "bytes"
        assert answer.content == whole[first:last + 1]
    assert whole[:7] == b"PMTiles"
    full = await web.client.get("/api/v1/map/basemap.pmtiles", headers=web.auth(Role.OPERATOR))
    assert full.status_code == 200
    assert full.content == whole
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["cache-control"] == "private, no-cache"
    assert full.headers["etag"]


async def test_ranges_that_cannot_be_served_answer_416(web: RunningApi, basemap_file: Path) -> None:
    size = basemap_file.stat().st_size
    auth = web.auth(Role.OPERATOR)
    for asked in (f"bytes={size}-", "bytes=10-5", "bytes=-0", "bytes=abc", "items=0-1", "bytes=0-1,5-6"):
        answer = await web.client.get("/api/v1/map/basemap.pmtiles", headers={**auth, "Range": asked})
        assert answer.status_code == 416, asked
        assert answer.headers["content-range"] == f"bytes */{size}"
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_map_config_opens_on_the_loaded_city(web: RunningApi) -> None:
    answer = await web.client.get("/api/v1/map/config", headers=web.auth(Role.AUDITOR))
    assert answer.status_code == 200
    config = answer.json()
    west, south, east, north = config["bounds"]
    lon, lat = config["center"]
    assert west < lon < east and south < lat < north
    assert 24.9 < lon < 25.0 and 60.1 < lat < 60.2  # Helsinki
    assert config["basemap_url"] == "/api/v1/map/basemap.pmtiles"
    assert config["tile_url"] is None  # nothing external unless configured
    assert (config["minzoom"], config["maxzoom"]) == (12, 14)


async def test_map_config_without_a_base_map(web: RunningApi) -> None:
    basemap_path(web.services.settings.data_dir).unlink()
    config = (await web.client.get("/api/v1/map/config", headers=web.auth(Role.DISPATCHER))).json()
    assert config["basemap_url"] is None
    assert config["bounds"] is None
    missing = await web.client.get("/api/v1/map/basemap.pmtiles", headers=web.auth(Role.DISPATCHER))
    assert missing.status_code == 404


@given(size=st.integers(1, 10**9), data=st.data())
def test_byte_range_serves_exactly_what_was_asked(size: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(0, size - 1))
    last = data.draw(st.integers(first, size - 1))
    assert byte_range(f"bytes={first}-{last}", size) == (first, last)
    assert byte_range(f"bytes={first}-", size) == (first, size - 1)
    assert byte_range(f"bytes=-{last - first + 1}", size) == (size - (last - first + 1), size - 1)


def range_or_status(header: str, size: int) -> tuple[int, int] | int:
    try:
        return byte_range(header, size)
    except Problem as problem:
        return problem.status


@given(st.text(max_size=40))
def test_byte_range_never_fails_other_than_with_416(header: str) -> None:
    outcome = range_or_status(header, 1000)
    assert outcome == 416 or (isinstance(outcome, tuple) and 0 <= outcome[0] <= outcome[1] < 1000)
