"""The HTTP surface as an integrator meets it: tokens, errors, the event listing."""

from __future__ import annotations

from datetime import UTC, datetime

from safecity.events import Event
from safecity.security import Role
from tests.api.conftest import PASSWORD, RunningApi


async def login(api: RunningApi, username: str, password: str = PASSWORD) -> dict[str, str]:
    answer = await api.client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    return body


async def test_token_answer_has_the_oauth2_shape(api: RunningApi) -> None:
    body = await login(api, "user_dispatcher")
    assert body["token_type"] == "bearer"
    assert {"access_token", "refresh_token", "expires_in"} <= set(body)
    me = await api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {"username": "user_dispatcher", "role": "dispatcher", "unit_id": None}


async def test_refresh_rotates_and_reuse_revokes_every_session(api: RunningApi) -> None:
    first = await login(api, "user_operator")
    rotated = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    stolen = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert stolen.status_code == 401
    assert stolen.headers["content-type"] == "application/problem+json"
    after = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401, "reuse of a spent token must end the whole family"


async def test_logout_revokes_the_refresh_token(api: RunningApi) -> None:
    session = await login(api, "user_supervisor")
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    assert (await api.client.post("/api/v1/auth/revoke", json={"refresh_token": session["refresh_token"]},
                                  headers=auth)).status_code == 204
    again = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert again.status_code == 401


async def test_repeated_failures_lock_the_account_even_for_the_right_password(api: RunningApi) -> None:
    statuses = []
    for _ in range(api.services.settings.login_max_failures):
        answer = await api.client.post("/api/v1/auth/token", data={"username": "user_auditor", "password": "nope"})
        statuses.append(answer.status_code)
    assert statuses[:-1] == [401] * (len(statuses) - 1)
    assert statuses[-1] == 423
    locked = await api.client.post("/api/v1/auth/token", data={"username": "user_auditor", "password": PASSWORD})
    assert locked.status_code == 423
    assert int(locked.headers["retry-after"]) > 0


async def test_unknown_and_wrong_password_look_alike(api: RunningApi) -> None:
    unknown = await api.client.post("/api/v1/auth/token", data={"username": "ghost", "password": PASSWORD})
    wrong = await api.client.post("/api/v1/auth/token", data={"username": "user_admin", "password": "x" * 12})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]


async def test_errors_are_problem_documents(api: RunningApi) -> None:
    missing = await api.client.get("/api/v1/alarm-accounts/ABCDEF", headers=api.auth(Role.OPERATOR))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    invalid = await api.client.post("/api/v1/alarm-accounts", headers=api.auth(Role.SUPERVISOR),
                                    json={"number": "not hex!", "kind": "castle"})
    assert invalid.status_code == 422
    problem = invalid.json()
    assert problem["title"] and problem["errors"]
    nowhere = await api.client.get("/api/v1/nothing-here")
    assert nowhere.status_code == 404
    assert nowhere.headers["content-type"] == "application/problem+json"


async def test_event_listing_is_newest_last_filtered_and_audited(api: RunningApi) -> None:
    now = datetime.now(UTC)
    await api.services.events.append(
        [Event(kind="system.tested", source="t", occurred_at=now, payload={"n": n}) for n in range(5)]
        + [Event(kind="system.other", source="t", occurred_at=now)]
    )
    answer = await api.client.get("/api/v1/events", params={"kind": "system.tested", "limit": 3},
                                  headers=api.auth(Role.AUDITOR))
    assert [e["payload"]["n"] for e in answer.json()] == [2, 3, 4]
    offsets = [e["offset"] for e in answer.json()]
    assert offsets == sorted(offsets)
    records = await api.services.audit.list(action="events.read")
    assert records[-1].actor == "user_auditor"
    bad = await api.client.get("/api/v1/events", params={"kind": "DROP TABLE"}, headers=api.auth(Role.ADMIN))
    assert bad.status_code == 422


async def test_denied_access_is_audited(api: RunningApi) -> None:
    denied = await api.client.get("/api/v1/audit", headers=api.auth(Role.OPERATOR))
    assert denied.status_code == 403
    records = await api.services.audit.list(action="access.denied")
    assert records[-1].actor == "user_operator"
    assert records[-1].outcome == "denied"


def test_field_units_see_only_their_own_unit_events() -> None:
    from safecity.api.live import concerns
    from safecity.security import Principal

    crew = Principal(user_id=1, username="crew", role=Role.FIELD_UNIT, unit_id="U1")
    dispatcher = Principal(user_id=2, username="d", role=Role.DISPATCHER, unit_id=None)
    now = datetime.now(UTC)
    mine = Event(kind="unit.assigned", source="t", occurred_at=now, payload={"unit_id": "U1"})
    theirs = Event(kind="incident.changed", source="t", occurred_at=now, payload={"unit_id": "U2"})
    requested = Event(kind="incident.requested", source="t", occurred_at=now, payload={"alarm_id": "a"})
    assert concerns(crew, mine)
    assert not concerns(crew, theirs)
    assert not concerns(crew, requested)
    assert concerns(dispatcher, theirs)
