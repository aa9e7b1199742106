"""The demo station and staff that make ``make run`` useful with no configuration."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from esitieto.settings import Settings
from esitieto.web.auth import hash_password
from models import Role, Station, StationMembership, User
from pretriage.ruleset import default_ruleset


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    station_id: str
    phone_number: str
    lead_username: str
    admin_username: str


def ensure_demo(session: Session, settings: Settings) -> DemoLogin | None:
    """Create the demo station and its nurse, station lead and administrator once; None when
    demo data is switched off."""
    demo = settings.demo
    if not demo.enabled:
        return None
    password = settings.demo_nurse_password.get_secret_value()
    if session.get(Station, demo.station_id) is None:
        session.add(
            Station(
                id=demo.station_id,
                name="Demo",
                phone_number=demo.phone_number,
                language="fi",
                # Every path on, with a placeholder link: the demo shows the SMS route too.
                digital_paths={
                    path: {"enabled": True, "sms_link": f"https://digi.example.fi/{path}"}
                    for path in default_ruleset().digital_paths
                },
                opening_hours={"mon-fri": "08:00-16:00", "sat-sun": "closed"},
            )
        )
    for username, display_name, role in (
        (demo.nurse_username, "Demo-hoitaja", Role.NURSE),
        (demo.lead_username, "Demo-osastonhoitaja", Role.STATION_LEAD),
        (demo.admin_username, "Demo-pääkäyttäjä", Role.ADMIN),
    ):
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = User(
                username=username,
                display_name=display_name,
                password_hash=hash_password(password),
                role=role,
            )
            session.add(user)
            session.flush()
        if session.get(StationMembership, (user.id, demo.station_id)) is None:
            session.add(StationMembership(user_id=user.id, station_id=demo.station_id))
    return DemoLogin(
        demo.nurse_username,
        password,
        demo.station_id,
        demo.phone_number,
        demo.lead_username,
        demo.admin_username,
    )
