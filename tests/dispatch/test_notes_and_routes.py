"""A crew writes notes and reads its road route only for the incident its unit was sent to."""

from __future__ import annotations

from safecity.geo.cli import default_graph_path, import_roads
from safecity.geo.roads import demo_extract_path
from safecity.security import Role
from tests.api.conftest import RunningApi

UNIT = {"id": "U1", "callsign": "Patrol 12", "kind": "patrol_car", "home_lat": 60.1690, "home_lon": 24.9400,
        "on_shift": True}
INCIDENT = {"type": "burglary", "lat": 60.1712, "lon": 24.9441, "address": "Keskuskatu 5, Helsinki"}


async def test_crew_notes_and_route_follow_its_assignment(api: RunningApi) -> None:
    import_roads(demo_extract_path(), default_graph_path(api.services.settings.data_dir))
    dispatcher, crew = api.auth(Role.DISPATCHER), api.auth(Role.FIELD_UNIT)
    assert (await api.client.post("/api/v1/units", headers=api.auth(Role.SUPERVISOR), json=UNIT)).status_code == 201
    incident = (await api.client.post("/api/v1/incidents", headers=dispatcher, json=INCIDENT)).json()
    path = f"/api/v1/incidents/{incident['id']}/notes"

    refused = await api.client.post(path, headers=crew, json={"note": "not my job"})
    assert refused.status_code in (403, 404), refused.text
    assert (await api.client.get("/api/v1/units/U1/route", headers=crew)).json() is None  # no job yet

    assert (await api.client.post(f"/api/v1/incidents/{incident['id']}/assignments", headers=dispatcher,
                                  json={"unit_id": "U1"})).status_code == 201
    assert (await api.client.post(path, headers=crew, json={"note": "two people inside"})).status_code == 204
    route = (await api.client.get("/api/v1/units/U1/route", headers=crew)).json()
    assert route["type"] == "Feature"
    assert route["geometry"]["type"] == "LineString"
    assert len(route["geometry"]["coordinates"]) > 2  # along the roads, not a straight line
    other = await api.client.get("/api/v1/units/U2/route", headers=crew)
    assert other.status_code in (403, 404)
    detail = (await api.client.get(f"/api/v1/incidents/{incident['id']}", headers=dispatcher)).json()
    assert [t["detail"] for t in detail["timeline"] if t["kind"] == "note"] == ["two people inside"]
    empty = await api.client.post(path, headers=dispatcher, json={"note": ""})
    assert empty.status_code == 422
