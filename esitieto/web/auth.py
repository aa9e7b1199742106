"""Local accounts: argon2 password hashes, a signed session cookie and CSRF tokens.

Pages depend on ``current_user``; a single sign-on provider can later set the same session
fields after its own login, with no change to the pages.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import StationMembership, User

_hasher = PasswordHasher()
# Verifying against this keeps a wrong username as slow as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username.strip()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active:
        return None
    return user


@dataclass(frozen=True)
class StaffUser:
    id: str
    username: str
    display_name: str
    role: str
    station_ids: frozenset[str]


class LoginRequired(Exception):
    """Raised by ``current_user``; the app turns it into a redirect to the login page."""


def load_staff_user(session: Session, user_id: str) -> StaffUser | None:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    stations = session.scalars(
        select(StationMembership.station_id).where(StationMembership.user_id == user.id)
    ).all()
    return StaffUser(user.id, user.username, user.display_name, user.role, frozenset(stations))


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(str(expected), submitted):
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong")
