"""Geography in one place: WGS84 helpers, the OSM road graph, the travel-time router, coverage."""
