"""Staff accounts: create and change them, for the admin page and ``esitieto users``.

One place checks an account change (role, stations, password strength, no admin locking
themselves out), so the page and the command line cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from esitieto.web.auth import hash_password, password_problem
from models import AuditEvent, Role, Station, StationMembership, User


class AccountError(ValueError):
    """A change that cannot be made; ``code`` names it for the page's message catalogue."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class AccountChange(BaseModel):
    """What an administrator sets on an account. ``password`` empty: keep the current one."""

    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    station_ids: list[str] = Field(default_factory=list)
    is_active: bool = True
    password: str = ""

    @field_validator("display_name")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    display_name: str
    role: str
    station_ids: list[str]
    is_active: bool
    has_password: bool
    sso_linked: bool


def list_accounts(session: Session) -> list[Account]:
    memberships: dict[str, list[str]] = {}
    for user_id, station_id in session.execute(
        select(StationMembership.user_id, StationMembership.station_id)
    ):
        memberships.setdefault(user_id, []).append(station_id)
    return [
        _account(user, memberships.get(user.id, []))
        for user in session.scalars(select(User).order_by(User.username))
    ]


def get_account(session: Session, user_id: str) -> Account | None:
    user = session.get(User, user_id)
    if user is None:
        return None
    stations = session.scalars(
        select(StationMembership.station_id).where(StationMembership.user_id == user.id)
    ).all()
    return _account(user, list(stations))


def create_account(session: Session, by: str | None, username: str, change: AccountChange) -> User:
    """A new account; a password is required (SSO-only accounts are linked by the SSO flow)."""
    username = username.strip()
    if not username or len(username) > 150 or any(c.isspace() for c in username):
        raise AccountError("bad_username")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError("username_taken")
    if not change.password:
        raise AccountError("password_required")
    _check(session, change)
    user = User(
        username=username,
        display_name=change.display_name,
        role=change.role,
        is_active=change.is_active,
        password_hash=hash_password(change.password),
    )
    session.add(user)
    session.flush()
    _set_stations(session, user.id, change.station_ids)
    _audit(session, by, user.id, "staff_created", change)
    return user


def update_account(session: Session, by: str | None, user_id: str, change: AccountChange) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise AccountError("no_such_account")
    _check(session, change)
    if by == user.id and (change.role != Role.ADMIN or not change.is_active):
        raise AccountError("own_admin")  # nobody locks themselves out
    if by == user.id:
        mine = set(session.scalars(select(StationMembership.station_id).where(
            StationMembership.user_id == user.id)))  # fmt: skip
        if set(change.station_ids) - mine:
            # Another station's cases are another administrator's to open to you: nobody
            # grants themselves access to health data.
            raise AccountError("own_stations")
    if change.password and user.sso_subject is not None:
        # The county's provider signs this person in, with its own checks (and ends their
        # access when they leave); a password here would be a way around it.
        raise AccountError("sso_password")
    user.display_name, user.role = change.display_name, change.role
    user.is_active = change.is_active
    if change.password:
        user.password_hash = hash_password(change.password)
    _set_stations(session, user.id, change.station_ids)
    _audit(session, by, user.id, "staff_changed", change)
    return user


def _check(session: Session, change: AccountChange) -> None:
    if change.password and (problem := password_problem(change.password)):
        raise AccountError(f"password_{problem}")
    known = set(session.scalars(select(Station.id)))
    if any(sid not in known for sid in change.station_ids):
        raise AccountError("unknown_station")


def _set_stations(session: Session, user_id: str, station_ids: list[str]) -> None:
    session.execute(delete(StationMembership).where(StationMembership.user_id == user_id))
    for station_id in sorted(set(station_ids)):
        session.add(StationMembership(user_id=user_id, station_id=station_id))


def _audit(session: Session, by: str | None, user_id: str, action: str, c: AccountChange) -> None:
    session.add(
        AuditEvent(
            user_id=by,
            action=action,
            object_type="user",
            object_id=user_id,
            # Never the password; whether it was set is enough.
            detail={
                "role": str(c.role),
                "stations": sorted(set(c.station_ids)),
                "active": c.is_active,
                "password_set": bool(c.password),
            },
        )
    )


def _account(user: User, stations: list[str]) -> Account:
    return Account(
        user.id,
        user.username,
        user.display_name,
        user.role,
        sorted(stations),
        user.is_active,
        bool(user.password_hash),
        user.sso_subject is not None,
    )
