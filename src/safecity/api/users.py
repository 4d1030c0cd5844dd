"""User administration (admin only); every change lands in the audit chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from safecity.api.deps import ServicesDep, allow
from safecity.api.problems import Problem
from safecity.security import Principal, Role, UnknownUser, UserExists, WeakPassword

router = APIRouter(prefix="/api/v1/users", tags=["users"])
Admin = Annotated[Principal, allow(Role.ADMIN)]


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=1, max_length=1024)
    role: Role
    unit_id: str | None = Field(default=None, max_length=64)


class UserOut(BaseModel):
    username: str
    role: Role
    unit_id: str | None
    disabled: bool
    locked_until: datetime | None
    created_at: datetime


class UserPatch(BaseModel):
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)


@router.get("")
async def list_users(services: ServicesDep, principal: Admin) -> list[UserOut]:
    users = await services.security.list_users()
    return [UserOut.model_validate(u, from_attributes=True) for u in users]


@router.post("", status_code=201)
async def add_user(body: UserIn, services: ServicesDep, principal: Admin) -> UserOut:
    try:
        user = await services.security.add_user(
            body.username, body.password, body.role, unit_id=body.unit_id, actor=principal.username
        )
    except UserExists as exc:
        raise Problem(409, f"user {body.username!r} exists") from exc
    except WeakPassword as exc:
        raise Problem(422, str(exc)) from exc
    return UserOut.model_validate(user, from_attributes=True)


@router.patch("/{username}")
async def change_user(username: str, body: UserPatch, services: ServicesDep, principal: Admin) -> UserOut:
    try:
        if body.password is not None:
            await services.security.set_password(username, body.password, actor=principal.username)
        if body.disabled:
            await services.security.disable_user(username, actor=principal.username)
        users = {u.username: u for u in await services.security.list_users()}
    except UnknownUser as exc:
        raise Problem(404, f"no user {username!r}") from exc
    except WeakPassword as exc:
        raise Problem(422, str(exc)) from exc
    if username not in users:
        raise Problem(404, f"no user {username!r}")
    return UserOut.model_validate(users[username], from_attributes=True)
