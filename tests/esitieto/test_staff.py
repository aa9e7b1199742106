"""Roles, the administrator's staff page, the account rules and the pages' language."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esitieto.accounts import AccountChange, AccountError, create_account, update_account
from esitieto.runtime import Runtime
from esitieto.web.auth import (
    FREE_ATTEMPTS,
    MIN_DISTINCT_CHARACTERS,
    MIN_PASSWORD_LENGTH,
    authenticate,
)
from esitieto.web.i18n import LANGUAGES, messages
from esitieto.web.staff import LIMITS
from models import AuditEvent, Role, Station, StationMembership, User
from tests.esitieto.test_web import _csrf, login

STRONG = "pitkä ja vahva lause 42"


def _new_user_form(client: TestClient, **overrides: object) -> dict[str, object]:
    form: dict[str, object] = {
        "username": "uusi.hoitaja",
        "display_name": "Uusi Hoitaja",
        "role": "nurse",
        "station": ["demo"],
        "password": STRONG,
        "csrf": _csrf(client, "/admin/staff"),
    }
    form.update(overrides)
    return form


def test_an_administrator_creates_a_nurse_who_then_sees_only_her_station(
    client: TestClient, runtime: Runtime
) -> None:
    with runtime.db.session() as s:
        s.add(Station(id="other", name="Toinen", phone_number="+358900000077"))
    assert login(client, "paakayttaja").status_code == 303
    page = client.get("/admin/staff")
    assert page.status_code == 200 and "hoitaja" in page.text
    made = client.post("/admin/staff", data=_new_user_form(client), follow_redirects=False)
    assert made.status_code == 303
    with runtime.db.session() as s:
        user = s.scalar(select(User).where(User.username == "uusi.hoitaja"))
        assert user is not None and user.role == Role.NURSE
        assert user.password_hash and STRONG not in user.password_hash
        stations = s.scalars(
            select(StationMembership.station_id).where(StationMembership.user_id == user.id)
        ).all()
        assert stations == ["demo"]
        audit = s.scalar(select(AuditEvent).where(AuditEvent.action == "staff_created"))
        assert audit is not None and audit.object_id == user.id
        assert STRONG not in str(audit.detail) and audit.detail["password_set"] is True
    client.cookies.clear()
    assert login(client, "uusi.hoitaja", STRONG).status_code == 303
    assert client.get("/").status_code == 200
    assert client.get("/admin/staff").status_code == 403
    assert client.get("/dashboard").status_code == 403


@pytest.mark.parametrize(
    ("overrides", "message_key"),
    [
        ({"password": "lyhyt"}, "password_too_short"),
        ({"password": "aaaaaaaaaaaaaaaa"}, "password_too_simple"),
        ({"username": "hoitaja"}, "username_taken"),
        ({"username": "kaksi sanaa"}, "bad_username"),
        ({"station": ["nowhere"]}, "unknown_station"),
        ({"role": "superuser"}, "bad_role"),
        ({"display_name": "   "}, "bad_display_name"),
        ({"display_name": "x" * 201}, "bad_display_name"),
    ],
)
def test_a_bad_account_form_is_shown_again_with_the_reason(
    client: TestClient, runtime: Runtime, overrides: dict[str, object], message_key: str
) -> None:
    login(client, "paakayttaja")
    answer = client.post("/admin/staff", data=_new_user_form(client, **overrides))
    assert answer.status_code == 422
    assert messages("fi").staff_errors[message_key].format(**LIMITS) in answer.text
    with runtime.db.session() as s:
        assert s.scalar(select(User).where(User.display_name == "Uusi Hoitaja")) is None


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_password_messages_say_the_rule_with_the_codes_numbers(
    client: TestClient, language: str
) -> None:
    login(client, "paakayttaja")
    headers = {"Accept-Language": language}
    short = client.post(
        "/admin/staff", data=_new_user_form(client, password="lyhyt"), headers=headers
    )
    simple = client.post(
        "/admin/staff", data=_new_user_form(client, password="abab" * 5), headers=headers
    )
    t = messages(language)
    for answer, key, number in (
        (short, "password_too_short", MIN_PASSWORD_LENGTH),
        (simple, "password_too_simple", MIN_DISTINCT_CHARACTERS),
    ):
        error = re.search(r'<p class="error" role="alert">([^<]+)</p>', answer.text)
        assert error and f" {number} " in error.group(1), (key, error)
        # the number comes from the code, never typed into a catalogue
        assert not re.search(r"\d", t.staff_errors[key])
    form = client.get("/admin/staff", headers=headers).text
    assert f'minlength="{MIN_PASSWORD_LENGTH}"' in form
    assert t.staff_password_help.format(**LIMITS) in form and str(MIN_PASSWORD_LENGTH) in form


def test_an_administrator_changes_a_role_and_deactivates_an_account(
    client: TestClient, runtime: Runtime
) -> None:
    with runtime.db.session() as s:
        nurse_id = s.scalar(select(User.id).where(User.username == "hoitaja"))
    login(client, "paakayttaja")
    form = {
        "display_name": "Demo-hoitaja",
        "role": "station_lead",
        "station": ["demo"],
        "is_active": "on",
        "password": "",
        "csrf": _csrf(client, f"/admin/staff/{nurse_id}"),
    }
    assert client.post(f"/admin/staff/{nurse_id}", data=form).status_code == 200
    with runtime.db.session() as s:
        nurse = s.get(User, nurse_id)
        assert nurse is not None and nurse.role == Role.STATION_LEAD
    # unchecked "active": the account can no longer sign in, and its session ends
    other = TestClient(client.app)
    assert login(other, "hoitaja").status_code == 303
    form.pop("is_active")
    assert client.post(f"/admin/staff/{nurse_id}", data=form).status_code == 200
    assert login(TestClient(client.app), "hoitaja").status_code == 401
    assert other.get("/", follow_redirects=False).headers["location"] == "/login"


def test_an_administrator_cannot_lock_themselves_out(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        admin = s.scalar(select(User).where(User.username == "paakayttaja"))
        assert admin is not None
        change = AccountChange(display_name="Minä", role=Role.NURSE, station_ids=["demo"])
        with pytest.raises(AccountError) as err:
            update_account(s, admin.id, admin.id, change)
        assert err.value.code == "own_admin"


def test_an_administrator_cannot_grant_themselves_a_station(runtime: Runtime) -> None:
    from models import Station

    with runtime.db.session() as s:
        s.add(Station(id="toinen", name="Toinen", phone_number="+358900000077"))
        admin = s.scalar(select(User).where(User.username == "paakayttaja"))
        assert admin is not None
        mine = AccountChange(display_name="Minä", role=Role.ADMIN, station_ids=["demo"])
        update_account(s, admin.id, admin.id, mine)  # keeping (or dropping) one's own is fine
        more = AccountChange(display_name="Minä", role=Role.ADMIN, station_ids=["demo", "toinen"])
        with pytest.raises(AccountError) as err:
            update_account(s, admin.id, admin.id, more)
        assert err.value.code == "own_stations"
        nurse = s.scalar(select(User).where(User.username == "hoitaja"))
        assert nurse is not None  # another administrator's account is theirs to change
        update_account(s, admin.id, nurse.id, AccountChange(
            display_name="N", role=Role.NURSE, station_ids=["demo", "toinen"]))  # fmt: skip


def test_create_account_and_sign_in_without_the_web(runtime: Runtime) -> None:
    change = AccountChange(display_name="Komento", role=Role.ADMIN, password=STRONG)
    with runtime.db.session() as s:
        create_account(s, None, "komento", change)
    with runtime.db.session() as s:
        assert authenticate(s, "komento", STRONG) is not None
        assert authenticate(s, "komento", STRONG + "x") is None


def test_an_sso_only_account_cannot_sign_in_with_a_password(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        s.add(
            User(
                username="sso.user",
                display_name="SSO",
                password_hash=None,
                sso_issuer="https://login.example-county.fi",
                sso_subject="abc-123",
            )
        )
    with runtime.db.session() as s:
        assert authenticate(s, "sso.user", "") is None
        assert authenticate(s, "sso.user", "anything at all") is None


def test_every_catalogue_has_every_message() -> None:
    def keys(data: object, prefix: str = "") -> set[str]:
        if not isinstance(data, dict):
            return {prefix}
        return set().union(*(keys(v, f"{prefix}.{k}") for k, v in data.items()))

    finnish = keys(messages("fi")._data)
    for language in LANGUAGES:
        assert keys(messages(language)._data) == finnish, language


def test_the_pages_follow_the_browser_then_the_users_choice(
    client: TestClient, runtime: Runtime
) -> None:
    swedish = client.get("/login", headers={"Accept-Language": "sv-FI,sv;q=0.9,en;q=0.5"})
    assert 'lang="sv"' in swedish.text and messages("sv").login_title in swedish.text
    login(client)
    choose = {"lang": "en", "next": "/?state=all", "csrf": _csrf(client, "/")}
    moved = client.post("/language", data=choose, follow_redirects=False)
    assert moved.headers["location"] == "/?state=all"
    page = client.get("/").text
    assert 'lang="en"' in page and messages("en").worklist_title in page
    with runtime.db.session() as s:
        assert s.scalar(select(User.language).where(User.username == "hoitaja")) == "en"
    # the account's choice follows the nurse to another browser
    other = TestClient(client.app)
    login(other)
    assert messages("en").worklist_title in other.get("/").text
    # only pages of this site
    choose = {"lang": "fi", "next": "//evil.example/", "csrf": _csrf(client, "/")}
    assert client.post("/language", data=choose, follow_redirects=False).headers["location"] == "/"


@pytest.mark.slow
def test_the_first_administrator_is_made_on_the_command_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESITIETO_")}
    env.update(ESITIETO_DATA_DIR=str(tmp_path), ESITIETO_DEMO__ENABLED="false")
    cli = [sys.executable, "-m", "esitieto.cli", "users"]
    add = [*cli, "add", "--username", "admin", "--role", "admin", "--password-stdin"]
    made = subprocess.run(add, input=STRONG + "\n", env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert STRONG not in made.stdout + made.stderr
    again = subprocess.run(add, input=STRONG + "\n", env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "username is already taken" in again.stderr
    weak = [*cli, "add", "--username", "other", "--password-stdin"]
    short = subprocess.run(weak, input="short\n", env=env, capture_output=True, text=True)
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    # The app hashes with argon2-cffi's defaults (the tests use cheap parameters).
    with sqlite3.connect(tmp_path / "esitieto.sqlite3") as db:
        (stored,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    listed = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["username"], r["role"]) for r in rows] == [("admin", "admin")]


def test_sign_in_waits_longer_after_each_wrong_password_beyond_five(
    client: TestClient, runtime: Runtime
) -> None:
    from models import LoginThrottle

    free = FREE_ATTEMPTS["user"]
    for _ in range(free + 1):  # the free ones, and one that sets the first wait
        assert login(client, "hoitaja", "wrong password").status_code == 401
    # now even the right password waits (no password is checked), a little, not for long
    blocked = login(client, "hoitaja")
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 2
    assert messages("fi").login_throttled.format(seconds=blocked.headers["Retry-After"]) in (
        blocked.text
    )
    assert login(TestClient(client.app), "osastonhoitaja").status_code == 303  # others: fine

    def wait_over() -> None:  # as if the wait had passed (no sleeping in tests)
        with runtime.db.session() as s:
            row = s.get(LoginThrottle, "user:hoitaja")
            assert row is not None
            row.last_attempt_at -= row.next_allowed_at - row.last_attempt_at
            row.next_allowed_at = row.last_attempt_at

    wait_over()
    assert login(client, "hoitaja", "wrong again").status_code == 401
    again = login(client, "hoitaja")
    assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 3  # doubled
    wait_over()
    assert login(client, "hoitaja").status_code == 303  # the nurse is never locked out
    with runtime.db.session() as s:
        assert s.get(LoginThrottle, "user:hoitaja") is None  # and starts again from zero
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.object_id == "hoitaja"))
        assert sorted(set(actions)) == ["login_failed", "login_throttled"]


def test_parallel_guesses_get_no_more_tries_than_a_queue(runtime: Runtime) -> None:
    """Of attempts that read the same count, one claims the row and the rest wait."""
    from datetime import timedelta

    from esitieto.web.auth import claim_attempt
    from models import LoginThrottle, utcnow

    now = utcnow()
    keys = ["user:someone"]
    with runtime.db.session() as s:
        assert claim_attempt(s, keys, now) is None
        row = s.get(LoginThrottle, "user:someone")
        assert row is not None
        stale = LoginThrottle(key=row.key, attempts=row.attempts,
                              last_attempt_at=row.last_attempt_at,
                              next_allowed_at=row.next_allowed_at)  # fmt: skip
    with runtime.db.session() as s:  # a parallel attempt won meanwhile
        assert claim_attempt(s, keys, now) is None
    with runtime.db.session() as s:  # this one read the count before that win
        s.get = lambda *args, **kwargs: stale  # type: ignore[method-assign,assignment]
        late = claim_attempt(s, keys, now)
        assert late is not None and late >= timedelta(seconds=1)
    with runtime.db.session() as s:
        counted = s.get(LoginThrottle, "user:someone")
        assert counted is not None and counted.attempts == 2  # the loser claimed nothing


def test_spraying_passwords_over_many_usernames_from_one_address_waits(
    client: TestClient,
) -> None:
    for i in range(FREE_ATTEMPTS["addr"] + 1):
        assert login(client, f"nobody{i}", "wrong password").status_code == 401
    assert login(client, "hoitaja").status_code == 429
