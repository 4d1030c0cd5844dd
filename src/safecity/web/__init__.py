"""The dashboard: the built pages (situation centre, field tablet, audit view) and the offline base map.

Sources live in `web/` at the repository root (npm, vite); `make` builds them into `static/` here,
and `safecity.web.api` serves them. This module stays import-light: the CLI imports it.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
BASEMAP_FILE = "basemap.pmtiles"


def basemap_path(data_dir: Path) -> Path:
    """Where the platform keeps the base map it cut from its OSM extract."""
    return data_dir / BASEMAP_FILE
