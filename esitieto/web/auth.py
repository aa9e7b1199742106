"""Staff sign-in: local accounts (argon2), server-side sessions, CSRF tokens and roles.

How a user proved who they are is kept apart from what they may do. ``start_session`` is the
one way into a session; the password form calls it today, and the county's single sign-on
(OpenID Connect) callback will call it later, after finding the account by the token's
``iss`` and ``sub`` (``User.sso_issuer``/``sso_subject``). Pages only ever depend on
``current_user`` and ``require``, so nothing behind them changes when SSO arrives.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from esitieto.runtime import Runtime, get_runtime
from models import LoginThrottle, Role, StaffSession, StationMembership, User, utcnow

_hasher = PasswordHasher()
# Verifying against this keeps a wrong username as slow as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 12
MIN_DISTINCT_CHARACTERS = 5
FREE_ATTEMPTS = {"user": 5, "addr": 30}
"""Sign-in attempts without delay in the window, per username and per source address (a
hospital's nurses may share one address)."""
ATTEMPT_WINDOW = timedelta(minutes=15)
"""An account or address that has not tried for this long starts again from zero."""
MAX_DELAY = timedelta(minutes=15)
"""Beyond the free attempts each one doubles the wait, up to this: guessing becomes hopeless
while a nurse who mistypes is never locked out for long."""


def use_password_hasher(hasher: PasswordHasher) -> None:
    """Hash with other argon2 parameters from now on. The tests use argon2's cheapest ones
    (every sign-in would otherwise cost them 0.2 s); the app keeps argon2-cffi's defaults
    (RFC 9106's second recommended option). Stored hashes carry their own parameters."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_problem(password: str) -> str | None:
    """Why a new password is not good enough (None: it is)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "too_short"
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        return "too_simple"
    return None


def claim_attempt(session: Session, keys: list[str], now: datetime) -> timedelta | None:
    """Claim one sign-in attempt for every key (``user:<name>``, ``addr:<address>``) before any
    password is checked; None when it may go ahead, else how long to wait.

    Each claim is a compare-and-set on the key's row: of parallel attempts that read the same
    count, one moves it on and the others wait, so a burst gets no more tries than a queue.
    """
    for key in keys:
        _add_if_missing(session, key, now)
    waits: list[timedelta] = []
    claims: list[tuple[LoginThrottle, int]] = []
    for key in keys:
        row = session.get(LoginThrottle, key, populate_existing=True)
        assert row is not None
        if row.next_allowed_at > now:
            waits.append(row.next_allowed_at - now)
            continue
        fresh = now - row.last_attempt_at > ATTEMPT_WINDOW
        claims.append((row, 1 if fresh else row.attempts + 1))
    if waits:
        return max(waits)
    for row, attempts in claims:
        free = FREE_ATTEMPTS[row.key.split(":", 1)[0]]
        over = attempts - free
        delay = min(MAX_DELAY, timedelta(seconds=2 ** min(over, 20))) if over > 0 else None
        claimed = session.execute(
            update(LoginThrottle)
            .where(
                LoginThrottle.key == row.key,
                LoginThrottle.attempts == row.attempts,
                LoginThrottle.last_attempt_at == row.last_attempt_at,
            )
            .values(
                attempts=attempts,
                last_attempt_at=now,
                next_allowed_at=now + delay if delay else now,
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return timedelta(seconds=1)  # another attempt won the row: try again shortly
    return None


def forget_attempts(session: Session, username: str) -> None:
    """A right password: the account starts again from zero (its address does not)."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == f"user:{username}"))


def _add_if_missing(session: Session, key: str, now: datetime) -> None:
    """INSERT that leaves an existing row alone, on SQLite and PostgreSQL alike."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    values = {"key": key, "attempts": 0, "last_attempt_at": now, "next_allowed_at": now}
    session.execute(insert(LoginThrottle).values(**values).on_conflict_do_nothing())


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username.strip()))
    stored = user.password_hash if user is not None else None
    try:  # no account or an SSO-only one: verify a dummy, as slow as a wrong password
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or stored is None or not user.is_active or user.sso_subject is not None:
        return None  # an account the county's provider signs in never takes a password
    return user


class Permission(StrEnum):
    CASES = "cases"
    """The worklist and the cases of the user's stations, and the actions on them."""
    DASHBOARD = "dashboard"
    """The adoption figures of the user's stations (page, JSON and CSV)."""
    STAFF = "staff"
    """Staff accounts: create, change role and stations, deactivate, reset password."""
    REGION = "region"
    """Every station's adoption figures side by side (page, JSON and CSV); no cases."""


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    Role.NURSE: frozenset({Permission.CASES}),
    Role.STATION_LEAD: frozenset({Permission.CASES, Permission.DASHBOARD}),
    Role.ADMIN: frozenset({Permission.CASES, Permission.DASHBOARD, Permission.STAFF}),
    Role.REGION: frozenset({Permission.REGION}),
}


@dataclass(frozen=True)
class StaffUser:
    id: str
    username: str
    display_name: str
    role: str
    station_ids: frozenset[str]
    language: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())


class LoginRequired(Exception):
    """Raised by ``current_user``; the app turns it into a redirect to the login page."""


NEXT_KEY = "next"
"""The session key for the page a signed-out user asked for, to go to after sign-in."""
SIGN_OUT_AT_PROVIDER_KEY = "sso_sign_out"
"""Set by signing out of an SSO session: the one thing that lets ``/logout/sso`` send the
browser on to the provider's sign-out (another site linking there does nothing)."""


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site (``/cases/…?…``), else None: never another
    site (``//evil.example``, ``https://…``, or ``/\\evil.example``, which browsers read
    as ``//``)."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return None
    if target.startswith("//") or "\\" in target or not target.isprintable():
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def remember_target(request: Request) -> None:
    """Keep the page a signed-out browser asked for (a page load, not a script's or an
    audio element's request), so sign-in can go on to it."""
    if request.method != "GET" or "text/html" not in request.headers.get("accept", ""):
        return
    query = request.url.query
    if target := safe_next(request.url.path + (f"?{query}" if query else "")):
        request.session[NEXT_KEY] = target


def load_staff_user(session: Session, user_id: str) -> StaffUser | None:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    stations = session.scalars(
        select(StationMembership.station_id).where(StationMembership.user_id == user.id)
    ).all()
    return StaffUser(
        user.id, user.username, user.display_name, user.role, frozenset(stations), user.language
    )


SEEN_EVERY = timedelta(minutes=1)
"""``last_seen_at`` is written at most this often: the idle timeout needs no write a request."""


def start_session(request: Request, session: Session, user_id: str, method: str) -> None:
    """Sign ``user_id`` in: a fresh session (no fixation) recorded on the server, so that
    signing out ends it whatever a copy of the cookie says."""
    language = request.session.get("lang")
    end_session(request, session)  # a session this browser still had ends here
    row = StaffSession(user_id=user_id, method=method)
    session.add(row)
    session.flush()
    request.session.update({"uid": user_id, "sid": row.id, "auth": method})
    if language:
        request.session["lang"] = language


def end_session(request: Request, session: Session) -> None:
    """Sign out: the server forgets the session, so the cookie opens nothing any more."""
    sid = request.session.get("sid")
    if sid:
        row = session.get(StaffSession, str(sid))
        if row is not None and row.ended_at is None:
            row.ended_at = utcnow()
    request.session.clear()


def _live_session(session: Session, sid: object, user_id: str, idle: timedelta) -> bool:
    row = session.get(StaffSession, str(sid)) if sid else None
    if row is None or row.ended_at is not None or row.user_id != user_id:
        return False
    now = utcnow()
    if now - row.last_seen_at > idle:
        row.ended_at = now  # idle too long: signed out
        return False
    if now - row.last_seen_at > SEEN_EVERY:
        row.last_seen_at = now
    return True


def current_user(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> StaffUser:
    user_id = request.session.get("uid")
    if not user_id:
        remember_target(request)
        raise LoginRequired
    idle = timedelta(seconds=runtime.settings.web.idle_timeout_s)
    with runtime.db.session() as session:
        live = _live_session(session, request.session.get("sid"), str(user_id), idle)
        user = load_staff_user(session, str(user_id)) if live else None
    if user is None:  # signed out, idle too long, or deactivated or removed since sign-in
        request.session.clear()
        remember_target(request)
        raise LoginRequired
    return user


def require(permission: Permission) -> Callable[..., StaffUser]:
    """A dependency: the signed-in user, if their role allows ``permission`` (else 403)."""

    def dependency(user: Annotated[StaffUser, Depends(current_user)]) -> StaffUser:
        if not user.can(permission):
            raise HTTPException(status_code=403, detail="your role does not allow this")
        return user

    return dependency


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(str(expected), submitted):
        # The error page says the form expired, not that the role forbids it.
        request.state.error_key = "csrf"
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong")
