"""Single sign-on accounts: who the county's provider says a user is, and what they may do.

The provider is the source of truth for staff who sign in through it: at every sign-in the
account found by the token's ``iss`` and ``sub`` takes the role and stations its claims give
(so a nurse moved to another station, or removed from the service, is moved or shut out at
the next sign-in, with no one here editing accounts). An account is never linked to an
existing password account by a name alone: a provider's ``preferred_username`` is not proof
of owning that local account. An administrator can still deactivate an SSO account here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import AuditEvent, Role, Station, StationMembership, User

ROLE_PRECEDENCE: tuple[Role, ...] = (Role.ADMIN, Role.STATION_LEAD, Role.NURSE, Role.REGION)
"""One account has one role: of several the claims give, the first here wins (the station
roles before the region's figures, which an administrator or a lead also sees per station)."""


class SsoRefused(Exception):
    """The provider vouched for the user, but Esitieto does not let them in; ``code`` names
    why for the page's message catalogue and the audit log."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class ClaimMapping:
    """How the provider's ID token claims read as Esitieto's roles and stations."""

    role_claim: str
    roles: Mapping[str, str]
    station_claim: str
    stations: Mapping[str, str]
    username_claim: str
    name_claim: str


@dataclass(frozen=True)
class SsoIdentity:
    issuer: str
    subject: str
    username: str
    display_name: str
    role: Role
    station_ids: frozenset[str]


def read_claims(
    claims: Mapping[str, Any], mapping: ClaimMapping, known_stations: Iterable[str]
) -> SsoIdentity:
    """The identity an already verified ID token's claims describe (``SsoRefused`` if they
    give no role Esitieto knows)."""
    issuer, subject = str(claims.get("iss") or ""), str(claims.get("sub") or "")
    if not issuer or not subject or len(issuer) > 255 or len(subject) > 255:
        raise SsoRefused("bad_identity")
    names = _values(claims, mapping.role_claim)
    granted = {mapping.roles[name] for name in names if name in mapping.roles}
    role = next((r for r in ROLE_PRECEDENCE if r.value in granted), None)
    if role is None:
        raise SsoRefused("no_role")
    known = set(known_stations)
    values = _values(claims, mapping.station_claim)
    named = [mapping.stations.get(v, "") for v in values] if mapping.stations else values
    stations = frozenset(station for station in named if station in known)
    username = _text(claims.get(mapping.username_claim)) or subject
    display_name = _text(claims.get(mapping.name_claim)) or username
    return SsoIdentity(issuer, subject, username[:150], display_name[:200], role, stations)


def sign_in_account(session: Session, identity: SsoIdentity) -> User:
    """The account linked to ``identity`` (created on first sign-in), with the role and the
    stations the claims give now; every change is audited. ``SsoRefused`` if deactivated."""
    user = session.scalar(
        select(User).where(User.sso_issuer == identity.issuer, User.sso_subject == identity.subject)
    )
    if user is None:
        user = create_linked_account(session, identity)
    if not user.is_active:
        raise SsoRefused("deactivated")
    memberships = select(StationMembership.station_id).where(StationMembership.user_id == user.id)
    current = set(session.scalars(memberships))
    if user.role != identity.role or current != identity.station_ids:
        _audit(session, user.id, "staff_changed", identity)
        user.role = identity.role
        session.execute(delete(StationMembership).where(StationMembership.user_id == user.id))
        for station_id in sorted(identity.station_ids):
            session.add(StationMembership(user_id=user.id, station_id=station_id))
    user.display_name = identity.display_name
    return user


def create_linked_account(session: Session, identity: SsoIdentity, *, retry: bool = True) -> User:
    """The account of a first sign-in; if the same person's other sign-in (a second tab, a
    double click) created it a moment ago, that one."""
    try:
        with session.begin_nested():
            user = User(
                username=_free_username(session, identity),
                display_name=identity.display_name,
                role=identity.role,
                password_hash=None,
                sso_issuer=identity.issuer,
                sso_subject=identity.subject,
            )
            session.add(user)
        _audit(session, user.id, "staff_created", identity)
        return user
    except IntegrityError:
        found = session.scalar(
            select(User).where(
                User.sso_issuer == identity.issuer, User.sso_subject == identity.subject
            )
        )
        if found is None and retry:  # the name was taken meanwhile, by someone else
            return create_linked_account(session, identity, retry=False)
        if found is None:
            raise
        return found


def known_stations(session: Session) -> list[str]:
    return list(session.scalars(select(Station.id)))


def _free_username(session: Session, identity: SsoIdentity) -> str:
    """The provider's username, or, when another account already has it, that name with a
    part of the subject (then a random part): the accounts stay apart."""
    for candidate in (
        identity.username,
        f"{identity.username[:120]}#{identity.subject[:24]}",
        f"{identity.username[:120]}#{secrets.token_hex(8)}",
    ):
        if session.scalar(select(User.id).where(User.username == candidate)) is None:
            return candidate
    return f"sso#{secrets.token_hex(16)}"


def _values(claims: Mapping[str, Any], path: str) -> list[str]:
    """A claim's values as strings; ``a.b`` reads nested objects, a single value is a list of
    one."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _audit(session: Session, user_id: str, action: str, identity: SsoIdentity) -> None:
    session.add(
        AuditEvent(
            user_id=None,  # the county's provider, not a user here, made the change
            action=action,
            object_type="user",
            object_id=user_id,
            detail={
                "by": "sso",
                "role": str(identity.role),
                "stations": sorted(identity.station_ids),
            },
        )
    )
