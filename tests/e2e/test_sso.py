"""Single sign-on in a real browser, against a real OpenID provider started here.

The county's provider is panva/oidc-provider on Node.js (``tests/peers/oidc_provider.py``);
the app is ``esitieto serve`` with password sign-in switched off. Two stations have a case
each; the provider's accounts carry roles and stations in their claims, and what a user sees
must follow them. A second provider, an impostor with the same client registration, shows
that only the configured issuer's sign-ins count.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from esitieto.web.i18n import messages
from tests.e2e.conftest import app_environment, running_app
from tests.peers.oidc_provider import Provider, running_provider
from tests.servers import free_port

pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")

pytestmark = [pytest.mark.slow, pytest.mark.browser]

T = messages("fi")
ACCOUNTS = {
    "hanna": {"name": "Hanna Hoitaja", "preferred_username": "hanna", "roles": ["nurse"],
              "stations": ["north"]},
    "reija": {"name": "Reija Alue", "preferred_username": "reija", "roles": ["region"]},
    "vieras": {"name": "Vieras", "preferred_username": "vieras", "roles": ["visitor"],
               "stations": ["north", "demo"]},
}  # fmt: skip


@dataclass(frozen=True)
class SsoSite:
    url: str
    database: Path
    provider: Provider
    impostor: Provider
    cases: dict[str, str]
    """Station id → the id of the one case there."""


@pytest.fixture(scope="module")
def sso_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoSite]:
    tmp = tmp_path_factory.mktemp("sso")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    callback, back = [f"{url}/login/sso/callback"], [f"{url}/login"]
    with (
        running_provider(ACCOUNTS, callback, tmp / "op.log", post_logout_redirect_uris=back) as op,
        running_provider(ACCOUNTS, callback, tmp / "impostor.log") as impostor,
    ):
        env = app_environment(tmp / "var")
        env.update(
            ESITIETO_SSO__ISSUER=op.issuer,
            ESITIETO_SSO__CLIENT_ID=op.client_id,
            ESITIETO_SSO__CLIENT_SECRET=op.client_secret,
            ESITIETO_SSO__SCOPE="openid profile esitieto",
            ESITIETO_SSO__PASSWORD_LOGIN="false",
            ESITIETO_SSO__ROLES=json.dumps(
                {"nurse": "nurse", "station_lead": "station_lead", "region": "region"}
            ),
        )
        with running_app(env, tmp / "serve.log", port=port):
            database = tmp / "var" / "esitieto.sqlite3"
            yield SsoSite(url, database, op, impostor, _two_stations_with_a_case(database))


def _two_stations_with_a_case(database: Path) -> dict[str, str]:
    from models import Call, CallState, Station

    engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 30})
    cases = {}
    try:
        with Session(engine) as s, s.begin():
            s.add(Station(id="north", name="Pohjoinen", phone_number="+358900000081"))
            for station in ("demo", "north"):
                call = Call(
                    station_id=station,
                    call_sid=f"CA{station:0>32}",
                    to_number="+358900000081",
                    from_number="+358401111111",
                    state=CallState.READY,
                    route="callback",
                    reason=f"Asia asemalla {station}",
                )
                s.add(call)
                s.flush()
                cases[station] = call.id
    finally:
        engine.dispose()
    return cases


@contextmanager
def _page(browser: Any, site: SsoSite) -> Iterator[Any]:
    context = browser.new_context(base_url=site.url, locale="fi-FI")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _provider_sign_in(page: Any, login: str) -> None:
    """The provider's own sign-in form (development interactions: any password)."""
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("whatever-the-county-checks")
    page.locator('button[type="submit"]').click()


def _sign_in(page: Any, site: SsoSite, login: str) -> None:
    page.goto("/login")
    page.locator("#sso-login").click()
    page.wait_for_url(f"{site.provider.issuer}/**")
    _provider_sign_in(page, login)


def _account(site: SsoSite, username: str) -> tuple[str, str, list[str]]:
    with sqlite3.connect(site.database) as db:
        row = db.execute(
            "SELECT id, sso_issuer, role FROM users WHERE username = ?", (username,)
        ).fetchone()
        stations = [
            r[0]
            for r in db.execute(
                "SELECT station_id FROM station_memberships WHERE user_id = ?", (row[0],)
            )
        ]
    return row[1], row[2], stations


def test_a_nurse_signs_in_at_the_county_and_sees_only_her_station(
    browser: Any, sso_site: SsoSite
) -> None:
    with _page(browser, sso_site) as page:
        page.goto("/")
        page.wait_for_url("**/login")
        assert page.locator('input[name="password"]').count() == 0  # switched off
        _sign_in(page, sso_site, "hanna")
        page.wait_for_url(f"{sso_site.url}/")
        page.locator("tr.case").first.wait_for()
        links = page.locator("tr.case a").evaluate_all("els => els.map(e => e.pathname)")
        assert f"/cases/{sso_site.cases['north']}" in links
        assert f"/cases/{sso_site.cases['demo']}" not in links
        other = page.goto(f"/cases/{sso_site.cases['demo']}")
        assert other is not None and other.status in (403, 404)
    issuer, role, stations = _account(sso_site, "hanna")
    assert (issuer, role, stations) == (sso_site.provider.issuer, "nurse", ["north"])


def test_signing_out_ends_the_session_here_and_at_the_provider(
    browser: Any, sso_site: SsoSite
) -> None:
    with _page(browser, sso_site) as page:
        _sign_in(page, sso_site, "hanna")
        page.wait_for_url(f"{sso_site.url}/")
        page.get_by_role("button", name=T.logout).click()
        # the provider asks to confirm its own sign-out, then sends the browser back
        page.wait_for_url(f"{sso_site.provider.issuer}/**")
        page.get_by_role("button", name="Yes, sign me out").click()
        page.wait_for_url(f"{sso_site.url}/login**")
        page.goto("/")
        page.wait_for_url("**/login")
        # and the next person at this PC is asked who they are, at the provider too
        page.locator("#sso-login").click()
        page.wait_for_url(f"{sso_site.provider.issuer}/**")
        assert page.locator('input[name="login"]').count() == 1


def test_the_region_role_lands_on_the_region_view(browser: Any, sso_site: SsoSite) -> None:
    with _page(browser, sso_site) as page:
        _sign_in(page, sso_site, "reija")
        page.wait_for_url(f"{sso_site.url}/region**")
        answer = page.goto("/")
        assert answer is not None and answer.status == 403


def test_a_user_the_claims_give_no_role_is_not_let_in(browser: Any, sso_site: SsoSite) -> None:
    with _page(browser, sso_site) as page:
        _sign_in(page, sso_site, "vieras")
        page.wait_for_url(f"{sso_site.url}/login/sso/callback**")
        assert page.get_by_role("alert").inner_text() == T.sso_no_role
        page.goto("/")
        page.wait_for_url("**/login")
    with sqlite3.connect(sso_site.database) as db:
        assert db.execute("SELECT 1 FROM users WHERE username = 'vieras'").fetchone() is None


def test_a_sign_in_at_another_issuer_is_refused(browser: Any, sso_site: SsoSite) -> None:
    """The impostor has the same client id, secret and redirect address. The browser is sent
    there with the app's own state and PKCE challenge, signs in, and comes back with the
    impostor's code: the app redeems codes only at the configured issuer, which refuses it."""
    with _page(browser, sso_site) as page:

        def to_impostor(route: Any) -> None:
            """The app's redirect to its provider, bent to the impostor on the way."""
            answer = route.fetch(max_redirects=0)
            real = urlsplit(answer.headers["location"])
            assert f"{real.scheme}://{real.netloc}" == sso_site.provider.issuer
            bent = f"{sso_site.impostor.issuer}{real.path}?{real.query}"
            route.fulfill(response=answer, headers={**answer.headers, "location": bent})

        page.route("**/login/sso", to_impostor)
        page.goto("/login")
        page.locator("#sso-login").click()
        page.wait_for_url(f"{sso_site.impostor.issuer}/**")
        _provider_sign_in(page, "hanna")
        page.wait_for_url(f"{sso_site.url}/login/sso/callback**")
        assert page.get_by_role("alert").inner_text() == T.sso_failed
        page.goto("/")
        page.wait_for_url("**/login")
    with sqlite3.connect(sso_site.database) as db:
        reasons = db.execute(
            "SELECT detail FROM audit_events WHERE action = 'login_failed' ORDER BY at"
        ).fetchall()
    assert any("invalid_grant" in r[0] for r in reasons)


def test_the_provider_asks_who_is_there_even_if_it_remembers_the_last_nurse(
    browser: Any, sso_site: SsoSite
) -> None:
    """Esitieto's session ended (idle, or the browser closed) while the provider's went on:
    at a shared PC the next sign-in must not go through as the previous nurse."""
    with _page(browser, sso_site) as page:
        _sign_in(page, sso_site, "hanna")
        page.wait_for_url(f"{sso_site.url}/")
        page.context.clear_cookies(name="esitieto_session")
        page.goto("/")
        page.wait_for_url("**/login")
        page.locator("#sso-login").click()
        page.wait_for_url(f"{sso_site.provider.issuer}/**")
        page.locator('input[name="login"]').wait_for()  # asked again, not let through
