"""Users, logins and tokens, wired to the store and the audit log.

Login throttling works on the user row, so it holds across any number of API processes: each
attempt first *reserves* a slot by incrementing `failed_logins` (an atomic UPDATE), and only then
pays for the argon2 verification. A burst of parallel guesses therefore gets at most
`login_max_failures` verifications before the account locks; a success gives the slot back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias, cast

from sqlalchemy import CursorResult, Result, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from safecity.config import Settings
from safecity.security.audit import SYSTEM_ACTOR, AuditLog, Outcome
from safecity.security.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidToken,
    InvalidUser,
    UnknownUser,
    UserExists,
    WeakPassword,
)
from safecity.security.model import RefreshToken, User
from safecity.security.passwords import PasswordHasher
from safecity.security.roles import Role
from safecity.security.tokens import (
    RefreshTokenParts,
    TokenPair,
    decode_access_token,
    issue_access_token,
    new_refresh_token,
    parse_refresh_token,
)
from safecity.store.engine import Database

log = logging.getLogger(__name__)

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as every route and every audit record sees it."""

    user_id: int
    username: str
    role: Role
    unit_id: str | None

    def has_role(self, roles: Collection[Role]) -> bool:
        return self.role in roles


@dataclass(frozen=True)
class UserInfo:
    """A user as shown to administrators (never the password hash)."""

    id: int
    username: str
    role: Role
    unit_id: str | None
    disabled: bool
    locked_until: datetime | None
    created_at: datetime
    password_changed_at: datetime


Actor: TypeAlias = "Principal | str | None"
"""Who makes a change: a signed-in user, a named tool ("cli"), or None for the system itself."""

UserRef: TypeAlias = "int | str"
"""A user by id or by username."""


def normalize_username(username: str) -> str:
    """Usernames compare case-insensitively: stored and looked up casefolded. Raises `InvalidUser`."""
    name = username.strip().casefold()
    if not _USERNAME.fullmatch(name):
        raise InvalidUser("username: 2-64 characters of a-z 0-9 . _ - @, starting with a letter or digit")
    return name


def _info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        role=Role(user.role),
        unit_id=user.unit_id,
        disabled=user.disabled,
        locked_until=user.locked_until,
        created_at=user.created_at,
        password_changed_at=user.password_changed_at,
    )


async def _find_user(session: AsyncSession, user: UserRef) -> User:
    if isinstance(user, int):
        found = await session.get(User, user)
    else:
        try:
            name = normalize_username(user)
        except InvalidUser:
            found = None
        else:
            found = await session.scalar(select(User).where(User.username == name))
    if found is None:
        raise UnknownUser(f"no user {user!r}")
    return found


def _rowcount(result: Result[Any]) -> int:
    return cast(CursorResult[Any], result).rowcount


def _not_locked(now: datetime) -> ColumnElement[bool]:
    return or_(User.locked_until.is_(None), User.locked_until <= now)


class SecurityService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Callable[[], datetime],
        hasher: PasswordHasher | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._key = settings.jwt_key()
        self.audit = audit or AuditLog(db, clock)
        self._dummy_hash: str | None = None

    # -- users -------------------------------------------------------------------------------

    async def add_user(
        self,
        username: str,
        password: str,
        role: Role | str,
        unit_id: str | None = None,
        *,
        actor: Actor,
        client: str | None = None,
    ) -> UserInfo:
        """Create a user. Raises `InvalidUser`, `WeakPassword`, `UserExists`."""
        name = normalize_username(username)
        try:
            role = Role(role)
        except ValueError as exc:
            raise InvalidUser(f"unknown role {role!r}") from exc
        if role is Role.FIELD_UNIT and not unit_id:
            raise InvalidUser("a field unit user must be bound to a unit")
        password_hash = await asyncio.to_thread(self._hasher.hash, password, username=name)
        now = self._clock()
        user = User(
            username=name,
            password_hash=password_hash,
            role=role.value,
            unit_id=unit_id,
            disabled=False,
            failed_logins=0,
            locked_until=None,
            created_at=now,
            password_changed_at=now,
        )
        try:
            async with self._db.session() as session:
                session.add(user)
                await session.flush()
                detail = {"username": name, "role": role.value, "unit_id": unit_id}
                await self._audit(session, actor, "user.create", f"user:{user.id}", client, detail)
        except IntegrityError as exc:
            raise UserExists(f"username {name!r} is taken") from exc
        return _info(user)

    async def get_user(self, user: UserRef) -> UserInfo:
        """A user by id or by username. Raises `UnknownUser`."""
        async with self._db.sessions() as session:
            return _info(await _find_user(session, user))

    async def list_users(self) -> list[UserInfo]:
        async with self._db.sessions() as session:
            return [_info(u) for u in await session.scalars(select(User).order_by(User.id))]

    async def set_password(self, user: UserRef, password: str, *, actor: Actor, client: str | None = None) -> None:
        """Replace the password, clear any lockout and end every session of the user."""
        found = await self.get_user(user)
        password_hash = await asyncio.to_thread(self._hasher.hash, password, username=found.username)
        now = self._clock()
        values: dict[str, Any] = {"password_hash": password_hash, "password_changed_at": now}
        values.update(failed_logins=0, locked_until=None)
        await self._change_user(found.id, values, "user.password_set", actor, client, revoke_tokens=True)

    async def disable_user(self, user: UserRef, *, actor: Actor, client: str | None = None) -> None:
        """Refuse the user's logins, refreshes and (from the next request on) access tokens."""
        found = await self.get_user(user)
        await self._change_user(found.id, {"disabled": True}, "user.disable", actor, client, revoke_tokens=True)

    async def enable_user(self, user: UserRef, *, actor: Actor, client: str | None = None) -> None:
        found = await self.get_user(user)
        values = {"disabled": False, "failed_logins": 0, "locked_until": None}
        await self._change_user(found.id, values, "user.enable", actor, client)

    async def _change_user(
        self,
        user_id: int,
        values: Mapping[str, Any],
        action: str,
        actor: Actor,
        client: str | None,
        *,
        revoke_tokens: bool = False,
    ) -> None:
        now = self._clock()
        async with self._db.session() as session:
            result = await session.execute(
                update(User).where(User.id == user_id).values(**values).execution_options(synchronize_session=False)
            )
            if _rowcount(result) == 0:
                raise UnknownUser(f"no user {user_id}")
            detail = None
            if revoke_tokens:
                detail = {"refresh_tokens_revoked": await self._revoke_all_in(session, user_id, now)}
            await self._audit(session, actor, action, f"user:{user_id}", client, detail)

    # -- login -------------------------------------------------------------------------------

    async def authenticate(self, username: str, password: str, client: str | None = None) -> TokenPair:
        """Password login. Raises `InvalidCredentials` (unknown user, wrong password and disabled
        account look alike) or `AccountLocked`."""
        now = self._clock()
        try:
            name: str | None = normalize_username(username)
        except InvalidUser:
            name = None
        user = None
        if name is not None:
            async with self._db.sessions() as session:
                user = await session.scalar(select(User).where(User.username == name))
        if user is None or user.disabled:
            # Same argon2 work as for a real account, so timing does not tell which usernames exist.
            await asyncio.to_thread(self._hasher.verify, await self._dummy(), password)
            reason = "unknown_user" if user is None else "disabled"
            resource = "user:?" if user is None else f"user:{user.id}"
            await self.audit.append(username, None, "auth.login", resource, "denied", client, detail={"reason": reason})
            raise InvalidCredentials()

        refusal = await self._reserve_attempt(user, now, client)
        if refusal is not None:
            raise refusal

        if not await asyncio.to_thread(self._hasher.verify, user.password_hash, password):
            raise await self._record_failure(user, now, client)

        new_hash = None
        if self._hasher.needs_rehash(user.password_hash):
            # An old password below today's policy keeps its hash; a reset will replace it.
            with contextlib.suppress(WeakPassword):
                new_hash = await asyncio.to_thread(self._hasher.hash, password)
        async with self._db.session() as session:
            values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
            if new_hash is not None:
                values["password_hash"] = new_hash
            result = await session.execute(
                update(User)
                .where(User.id == user.id, User.disabled.is_(False), _not_locked(now))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            granted = _rowcount(result) == 1
            if granted:  # else disabled or locked by a parallel attempt while we verified
                pair = self._issue(session, user, now)
                await self._audit_user(session, user, user.id, "auth.login", "ok", client)
        if not granted:
            raise await self._refusal(user.id, now, client)
        return pair

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_urlsafe(24))
        return self._dummy_hash

    async def _reserve_attempt(
        self, user: User, now: datetime, client: str | None
    ) -> InvalidCredentials | AccountLocked | None:
        """Count this attempt as a failure until it proves otherwise; None when it may go ahead."""
        async with self._db.session() as session:
            attempts = await session.scalar(
                update(User)
                .where(User.id == user.id, User.disabled.is_(False), _not_locked(now))
                .values(failed_logins=User.failed_logins + 1)
                .returning(User.failed_logins)
                .execution_options(synchronize_session=False)
            )
            if attempts is not None and attempts > self._settings.login_max_failures:
                # More attempts in flight than failures allowed: lock instead of verifying.
                await self._lock_if_due(session, user, now, client)
        if attempts is None or attempts > self._settings.login_max_failures:
            return await self._refusal(user.id, now, client)
        return None

    async def _record_failure(
        self, user: User, now: datetime, client: str | None
    ) -> InvalidCredentials | AccountLocked:
        """A wrong password: the reserved attempt stays counted, and may be the one that locks."""
        async with self._db.session() as session:
            locked = await self._lock_if_due(session, user, now, client)
            detail = {"reason": "bad_password"}
            await self._audit_user(session, user, user.id, "auth.login", "denied", client, detail)
        return AccountLocked(self._settings.login_lockout_s) if locked else InvalidCredentials()

    async def _lock_if_due(self, session: AsyncSession, user: User, now: datetime, client: str | None) -> bool:
        limit = self._settings.login_max_failures
        until = now + timedelta(seconds=self._settings.login_lockout_s)
        # One conditional statement decides, so of several parallel failures exactly one locks.
        result = await session.execute(
            update(User)
            .where(User.id == user.id, User.failed_logins >= limit, _not_locked(now))
            .values(locked_until=until, failed_logins=0)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) == 0:
            return False
        detail = {"username": user.username, "failures": limit, "locked_until": until.isoformat()}
        await self._audit(session, None, "auth.lockout", f"user:{user.id}", client, detail)
        log.warning("account locked user_id=%d client=%s", user.id, client)
        return True

    async def _refusal(self, user_id: int, now: datetime, client: str | None) -> InvalidCredentials | AccountLocked:
        """Why a known user cannot log in right now, audited."""
        async with self._db.session() as session:
            user = await session.get(User, user_id)
            if user is None or user.disabled:
                error: InvalidCredentials | AccountLocked = InvalidCredentials()
                reason = "disabled"
            elif user.locked_until is not None and user.locked_until > now:
                error = AccountLocked(max(1, math.ceil((user.locked_until - now).total_seconds())))
                reason = "locked"
            else:  # lock already expired again: treat as a plain refusal, the client may retry
                error, reason = InvalidCredentials(), "contention"
            await self._audit_user(session, user, user_id, "auth.login", "denied", client, {"reason": reason})
        return error

    # -- tokens ------------------------------------------------------------------------------

    def _issue(
        self, session: AsyncSession, user: User, now: datetime, refresh: RefreshTokenParts | None = None
    ) -> TokenPair:
        refresh = refresh or new_refresh_token()
        session.add(
            RefreshToken(
                id=refresh.token_id,
                user_id=user.id,
                token_hash=refresh.secret_hash,
                issued_at=now,
                expires_at=now + timedelta(seconds=self._settings.refresh_token_ttl_s),
                revoked_at=None,
                replaced_by=None,
            )
        )
        access = issue_access_token(
            self._key,
            subject=str(user.id),
            role=Role(user.role),
            unit_id=user.unit_id,
            now=now,
            ttl_s=self._settings.access_token_ttl_s,
            token_id=secrets.token_hex(16),
        )
        return TokenPair(access_token=access, refresh_token=refresh.token, expires_in=self._settings.access_token_ttl_s)

    async def refresh(self, refresh_token: str, client: str | None = None) -> TokenPair:
        """Rotate: the old refresh token is spent, a new pair comes back.

        Presenting a spent token again means two parties hold it (one of them a thief): every
        refresh token of the user is revoked and `InvalidToken` raised.
        """
        presented = parse_refresh_token(refresh_token)
        now = self._clock()
        async with self._db.session() as session:
            row = await session.get(RefreshToken, presented.token_id)
            if row is None or not presented.matches(row.token_hash):
                raise InvalidToken("unknown refresh token")
            if row.revoked_at is not None:
                raise InvalidToken("refresh token revoked")
            reused = row.replaced_by is not None
            if not reused:
                if row.expires_at <= now:
                    raise InvalidToken("refresh token expired")
                user = await session.get(User, row.user_id)
                if user is None or user.disabled:
                    raise InvalidToken("user unknown or disabled")
                successor = new_refresh_token()
                result = await session.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.id == row.id,
                        RefreshToken.replaced_by.is_(None),
                        RefreshToken.revoked_at.is_(None),
                    )
                    .values(replaced_by=successor.token_id)
                    .execution_options(synchronize_session=False)
                )
                reused = _rowcount(result) == 0  # a parallel refresh spent it first
                if not reused:
                    pair = self._issue(session, user, now, successor)
        if reused:
            await self._revoke_for_reuse(row.user_id, row.id, now, client)
            raise InvalidToken("refresh token reuse detected; all sessions of the user were revoked")
        return pair

    async def _revoke_for_reuse(self, user_id: int, token_id: str, now: datetime, client: str | None) -> None:
        async with self._db.session() as session:
            revoked = await self._revoke_all_in(session, user_id, now)
            user = await session.get(User, user_id)
            detail = {"token_id": token_id, "refresh_tokens_revoked": revoked}
            await self._audit_user(session, user, user_id, "auth.refresh_reuse", "denied", client, detail)
        log.warning("refresh token reuse user_id=%d client=%s", user_id, client)

    async def revoke(self, refresh_token: str, *, actor: Principal | None = None, client: str | None = None) -> None:
        """Log out one session. With `actor`, only the actor's own tokens qualify.

        Revoking a revoked token is a no-op; an unknown one (or someone else's) is `InvalidToken`.
        """
        presented = parse_refresh_token(refresh_token)
        now = self._clock()
        async with self._db.session() as session:
            row = await session.get(RefreshToken, presented.token_id)
            if row is None or not presented.matches(row.token_hash):
                raise InvalidToken("unknown refresh token")
            if actor is not None and row.user_id != actor.user_id:
                raise InvalidToken("refresh token of another user")
            result = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.id == row.id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result):
                user = await session.get(User, row.user_id)
                detail = {"token_id": row.id}
                await self._audit_user(session, user, row.user_id, "auth.token_revoke", "ok", client, detail)

    async def revoke_all(self, user: UserRef, *, actor: Actor = None, client: str | None = None) -> int:
        """End every session of a user; returns how many refresh tokens were still live."""
        now = self._clock()
        async with self._db.session() as session:
            found = await _find_user(session, user)
            revoked = await self._revoke_all_in(session, found.id, now)
            detail = {"refresh_tokens_revoked": revoked}
            await self._audit(session, actor, "auth.token_revoke_all", f"user:{found.id}", client, detail)
        return revoked

    async def _revoke_all_in(self, session: AsyncSession, user_id: int, now: datetime) -> int:
        result = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def principal_from_access_token(self, token: str) -> Principal:
        """Who is calling. Refuses tokens of users since disabled or deleted, or issued before a
        password change; role and unit come from the database, so a change applies at once."""
        claims = decode_access_token(self._key, token, self._clock())
        try:
            user_id = int(claims.subject)
        except ValueError as exc:
            raise InvalidToken("malformed subject") from exc
        async with self._db.sessions() as session:
            user = await session.get(User, user_id)
        if user is None or user.disabled:
            raise InvalidToken("user unknown or disabled")
        if claims.issued_at < user.password_changed_at.replace(microsecond=0):
            raise InvalidToken("password changed since the token was issued")
        return Principal(user.id, user.username, Role(user.role), user.unit_id)

    async def _audit_user(
        self,
        session: AsyncSession,
        user: User | None,
        user_id: int,
        action: str,
        outcome: Outcome,
        client: str | None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """A record whose actor is the user the action concerns (logins, logouts)."""
        name, role = (user.username, user.role) if user else ("?", None)
        await self.audit.append(name, role, action, f"user:{user_id}", outcome, client, detail, session=session)

    async def _audit(
        self,
        session: AsyncSession,
        actor: Actor,
        action: str,
        resource: str,
        client: str | None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(actor, Principal):
            name, role = actor.username, actor.role.value
        else:
            name, role = actor or SYSTEM_ACTOR, None
        await self.audit.append(name, role, action, resource, "ok", client, detail, session=session)
