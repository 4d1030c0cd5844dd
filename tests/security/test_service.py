"""Users, logins, lockout and tokens against a real database (both backends), with an injected clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from safecity.config import Settings
from safecity.security import (
    AccountLocked,
    InvalidCredentials,
    InvalidToken,
    InvalidUser,
    PasswordHasher,
    Principal,
    Role,
    SecurityService,
    UnknownUser,
    UserExists,
    WeakPassword,
)
from safecity.security.model import User
from safecity.security.passwords import CHEAP_PROFILE
from safecity.store.engine import Database

T0 = datetime(2025, 5, 4, 7, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
MAX_FAILURES = 3
LOCKOUT_S = 600


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class CountingHasher(PasswordHasher):
    """The cheap hasher, remembering which hashes it was asked to verify against."""

    def __init__(self) -> None:
        super().__init__(CHEAP_PROFILE)
        self.verified: list[str] = []

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return super().verify(password_hash, password)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        jwt_secret="test-signing-key-" + "x" * 40,
        login_max_failures=MAX_FAILURES,
        login_lockout_s=LOCKOUT_S,
        access_token_ttl_s=900,
        refresh_token_ttl_s=3600,
    )


@pytest.fixture
def service(db: Database, settings: Settings, clock: Clock, hasher: CountingHasher) -> SecurityService:
    return SecurityService(db, settings, clock, hasher)


ADMIN = Principal(user_id=0, username="root", role=Role.ADMIN, unit_id=None)


async def stored_hash(db: Database, username: str) -> str:
    async with db.sessions() as session:
        found = await session.scalar(select(User.password_hash).where(User.username == username))
    assert found is not None
    return found


async def actions(service: SecurityService) -> list[tuple[str, str, str]]:
    return [(r.action, r.outcome, r.actor) for r in await service.audit.list(limit=1000)]


# -- users ----------------------------------------------------------------------------------


async def test_add_user_stores_normalized_user_and_audits_it(service: SecurityService) -> None:
    user = await service.add_user("  Crew.E12 ", PASSWORD, Role.FIELD_UNIT, unit_id="E12", actor=ADMIN)
    assert (user.username, user.role, user.unit_id, user.disabled) == (
        "crew.e12",
        Role.FIELD_UNIT,
        "E12",
        False,
    )
    assert user.created_at == T0
    assert [u.username for u in await service.list_users()] == ["crew.e12"]
    (record,) = await service.audit.list()
    assert (record.actor, record.actor_role, record.action, record.resource) == (
        "root", "admin", "user.create", f"user:{user.id}"
    )  # fmt: skip
    assert record.detail == {"username": "crew.e12", "role": "field_unit", "unit_id": "E12"}


async def test_add_user_refusals(service: SecurityService) -> None:
    await service.add_user("disp1", PASSWORD, "dispatcher", actor="cli")
    with pytest.raises(UserExists):
        await service.add_user("DISP1", PASSWORD, Role.OPERATOR, actor="cli")
    with pytest.raises(WeakPassword):
        await service.add_user("disp2", "short", Role.OPERATOR, actor="cli")
    with pytest.raises(InvalidUser):
        await service.add_user("crew", PASSWORD, Role.FIELD_UNIT, actor="cli")
    with pytest.raises(InvalidUser):
        await service.add_user("bad name!", PASSWORD, Role.OPERATOR, actor="cli")
    with pytest.raises(InvalidUser):
        await service.add_user("disp3", PASSWORD, "superuser", actor="cli")
    assert [u.username for u in await service.list_users()] == ["disp1"]
    assert [a for a, _, _ in await actions(service)] == ["user.create"]


async def test_user_operations_by_id_or_name(service: SecurityService) -> None:
    user = await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=None)
    assert await service.get_user("OP1") == await service.get_user(user.id)
    with pytest.raises(UnknownUser):
        await service.get_user("nobody")
    with pytest.raises(UnknownUser):
        await service.disable_user(999, actor=ADMIN)
    with pytest.raises(UnknownUser):
        await service.set_password("nobody", PASSWORD, actor=ADMIN)


# -- login ----------------------------------------------------------------------------------


async def test_login_gives_tokens_for_the_user(service: SecurityService) -> None:
    user = await service.add_user("crew1", PASSWORD, Role.FIELD_UNIT, unit_id="E12", actor=ADMIN)
    pair = await service.authenticate("Crew1", PASSWORD, client="198.51.100.7")
    assert (pair.token_type, pair.expires_in) == ("bearer", 900)
    principal = await service.principal_from_access_token(pair.access_token)
    assert principal == Principal(user.id, "crew1", Role.FIELD_UNIT, "E12")
    assert ("auth.login", "ok", "crew1") in await actions(service)


async def test_wrong_unknown_and_disabled_look_alike(service: SecurityService, hasher: CountingHasher) -> None:
    user = await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    await service.add_user("op2", PASSWORD, Role.OPERATOR, actor=ADMIN)
    await service.disable_user("op2", actor=ADMIN)
    errors = []
    for name, password in [
        ("op1", "wrong password!"),
        ("ghost", PASSWORD),
        ("op2", PASSWORD),
        ("x", PASSWORD),
    ]:
        hasher.verified.clear()
        with pytest.raises(InvalidCredentials) as caught:
            await service.authenticate(name, password)
        errors.append(str(caught.value))
        # every path pays for exactly one argon2 verification, real or dummy
        assert len(hasher.verified) == 1
    assert len(set(errors)) == 1
    stored = (await service.get_user(user.id)).username
    assert stored == "op1"
    denied = [(a, o) for a, o, _ in await actions(service) if a == "auth.login"]
    assert denied == [("auth.login", "denied")] * 4


async def test_lockout_after_repeated_failures_then_unlock(service: SecurityService, clock: Clock) -> None:
    await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(InvalidCredentials):
            await service.authenticate("op1", "wrong password!")
    with pytest.raises(AccountLocked) as locked:
        await service.authenticate("op1", "wrong password!")
    assert locked.value.retry_after == LOCKOUT_S

    clock.advance(seconds=100)
    with pytest.raises(AccountLocked) as still:  # the right password does not help now
        await service.authenticate("op1", PASSWORD)
    assert still.value.retry_after == LOCKOUT_S - 100
    assert (await service.get_user("op1")).locked_until == T0 + timedelta(seconds=LOCKOUT_S)

    clock.advance(seconds=LOCKOUT_S - 100)
    await service.authenticate("op1", PASSWORD)
    assert (await service.get_user("op1")).locked_until is None
    log = await actions(service)
    assert ("auth.lockout", "ok", "system") in log
    assert log.count(("auth.login", "denied", "op1")) == MAX_FAILURES + 1


async def test_success_resets_the_failure_count(service: SecurityService) -> None:
    await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    for _ in range(3):
        for _ in range(MAX_FAILURES - 1):
            with pytest.raises(InvalidCredentials):
                await service.authenticate("op1", "wrong password!")
        await service.authenticate("op1", PASSWORD)


async def test_parallel_guessing_gets_no_more_verifications_than_allowed(
    db: Database, service: SecurityService, hasher: CountingHasher
) -> None:
    user = await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    real_hash = await stored_hash(db, "op1")
    hasher.verified.clear()
    results = await asyncio.gather(
        *(service.authenticate("op1", f"guess number {i}") for i in range(12)), return_exceptions=True
    )
    assert all(isinstance(r, InvalidCredentials | AccountLocked) for r in results)
    assert hasher.verified.count(real_hash) <= MAX_FAILURES
    assert sum(isinstance(r, AccountLocked) for r in results) >= 12 - MAX_FAILURES
    assert (await service.get_user(user.id)).locked_until is not None


async def test_login_upgrades_an_outdated_hash(
    db: Database, settings: Settings, clock: Clock, service: SecurityService
) -> None:
    await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    old_hash = await stored_hash(db, "op1")
    stronger = SecurityService(db, settings, clock, PasswordHasher(replace(CHEAP_PROFILE, time_cost=2)))
    await stronger.authenticate("op1", PASSWORD)
    new_hash = await stored_hash(db, "op1")
    assert new_hash != old_hash
    assert ",t=2," in new_hash
    await stronger.authenticate("op1", PASSWORD)  # and the new hash verifies


# -- tokens ---------------------------------------------------------------------------------


async def test_refresh_rotates_and_reuse_revokes_every_session(service: SecurityService, clock: Clock) -> None:
    await service.add_user("disp1", PASSWORD, Role.DISPATCHER, actor=ADMIN)
    first = await service.authenticate("disp1", PASSWORD)
    other_device = await service.authenticate("disp1", PASSWORD)
    clock.advance(minutes=10)
    second = await service.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    await service.principal_from_access_token(second.access_token)

    with pytest.raises(InvalidToken, match="reuse"):
        await service.refresh(first.refresh_token)  # the stolen copy comes back
    for token in (second.refresh_token, other_device.refresh_token):
        with pytest.raises(InvalidToken):
            await service.refresh(token)
    assert ("auth.refresh_reuse", "denied", "disp1") in await actions(service)


async def test_parallel_refreshes_of_one_token_never_both_succeed(service: SecurityService) -> None:
    await service.add_user("disp1", PASSWORD, Role.DISPATCHER, actor=ADMIN)
    pair = await service.authenticate("disp1", PASSWORD)
    results = await asyncio.gather(*(service.refresh(pair.refresh_token) for _ in range(4)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) <= 1
    assert any(isinstance(r, InvalidToken) for r in results)


async def test_expired_refresh_token_is_refused(service: SecurityService, clock: Clock) -> None:
    await service.add_user("disp1", PASSWORD, Role.DISPATCHER, actor=ADMIN)
    pair = await service.authenticate("disp1", PASSWORD)
    clock.advance(seconds=3600)
    with pytest.raises(InvalidToken, match="expired"):
        await service.refresh(pair.refresh_token)


async def test_forged_refresh_tokens_are_refused(service: SecurityService) -> None:
    await service.add_user("disp1", PASSWORD, Role.DISPATCHER, actor=ADMIN)
    pair = await service.authenticate("disp1", PASSWORD)
    token_id = pair.refresh_token.split(".")[0]
    for forged in (f"{token_id}.guessed-secret", "unknown.secret", "garbage"):
        with pytest.raises(InvalidToken):
            await service.refresh(forged)
    await service.refresh(pair.refresh_token)  # a wrong secret does not spend the real token


async def test_revoke_ends_one_session(service: SecurityService) -> None:
    user = await service.add_user("disp1", PASSWORD, Role.DISPATCHER, actor=ADMIN)
    other = await service.add_user("disp2", PASSWORD, Role.DISPATCHER, actor=ADMIN)
    pair = await service.authenticate("disp1", PASSWORD)
    keep = await service.authenticate("disp1", PASSWORD)
    intruder = Principal(other.id, other.username, other.role, None)
    with pytest.raises(InvalidToken, match="another user"):
        await service.revoke(pair.refresh_token, actor=intruder)
    await service.revoke(pair.refresh_token, actor=Principal(user.id, user.username, user.role, None))
    await service.revoke(pair.refresh_token)  # twice is fine
    with pytest.raises(InvalidToken, match="revoked"):
        await service.refresh(pair.refresh_token)
    await service.refresh(keep.refresh_token)
    assert [a for a, _, _ in await actions(service)].count("auth.token_revoke") == 1


async def test_revoke_all_ends_every_session(service: SecurityService) -> None:
    await service.add_user("disp1", PASSWORD, Role.DISPATCHER, actor=ADMIN)
    pairs = [await service.authenticate("disp1", PASSWORD) for _ in range(3)]
    assert await service.revoke_all("disp1", actor=ADMIN) == 3
    for pair in pairs:
        with pytest.raises(InvalidToken):
            await service.refresh(pair.refresh_token)


async def test_disabled_users_tokens_are_refused(service: SecurityService) -> None:
    user = await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    pair = await service.authenticate("op1", PASSWORD)
    await service.principal_from_access_token(pair.access_token)
    await service.disable_user(user.id, actor=ADMIN)
    with pytest.raises(InvalidToken, match="disabled"):
        await service.principal_from_access_token(pair.access_token)
    with pytest.raises(InvalidToken):
        await service.refresh(pair.refresh_token)
    await service.enable_user(user.id, actor=ADMIN)
    await service.authenticate("op1", PASSWORD)


async def test_expired_access_token_is_refused(service: SecurityService, clock: Clock) -> None:
    await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    pair = await service.authenticate("op1", PASSWORD)
    clock.advance(seconds=899)
    await service.principal_from_access_token(pair.access_token)
    clock.advance(seconds=1)
    with pytest.raises(InvalidToken, match="expired"):
        await service.principal_from_access_token(pair.access_token)


async def test_password_change_ends_existing_sessions(service: SecurityService, clock: Clock) -> None:
    await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    pair = await service.authenticate("op1", PASSWORD)
    clock.advance(seconds=5)
    await service.set_password("op1", "a brand new passphrase", actor=ADMIN)
    with pytest.raises(InvalidToken, match="password changed"):
        await service.principal_from_access_token(pair.access_token)
    with pytest.raises(InvalidToken):
        await service.refresh(pair.refresh_token)
    with pytest.raises(InvalidCredentials):
        await service.authenticate("op1", PASSWORD)
    fresh = await service.authenticate("op1", "a brand new passphrase")
    await service.principal_from_access_token(fresh.access_token)


async def test_every_change_is_in_a_valid_audit_chain(service: SecurityService, clock: Clock) -> None:
    user = await service.add_user("op1", PASSWORD, Role.OPERATOR, actor=ADMIN)
    pair = await service.authenticate("op1", PASSWORD, client="203.0.113.9")
    await service.refresh(pair.refresh_token)
    with pytest.raises(InvalidToken):
        await service.refresh(pair.refresh_token)
    await service.set_password(user.id, "another long passphrase", actor=ADMIN, client="203.0.113.1")
    await service.disable_user(user.id, actor="cli")
    log = await actions(service)
    assert [a for a, _, _ in log] == [
        "user.create", "auth.login", "auth.refresh_reuse", "user.password_set", "user.disable"
    ]  # fmt: skip
    assert log[-1][2] == "cli"
    report = await service.audit.verify()
    assert report.ok, report.problems
