"""Single sign-on: claims to accounts, and ID tokens checked against a real provider's keys.

The whole browser flow is in ``tests/e2e/test_sso.py``; here the rules behind it are tried
one by one: which role and stations a token's claims give, how an account is linked and kept
up to date, and that a token the provider did not issue to us (another key, another issuer,
another audience, expired, a replayed nonce, no signature) is refused.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from authlib.integrations.starlette_client import OAuthError
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from pydantic import SecretStr
from sqlalchemy import select

from esitieto.accounts import AccountChange, AccountError, update_account
from esitieto.app import create_app
from esitieto.runtime import Runtime
from esitieto.settings import Settings, SsoSettings
from esitieto.sso import (
    ClaimMapping,
    SsoRefused,
    create_linked_account,
    read_claims,
    sign_in_account,
)
from esitieto.web.auth import authenticate, hash_password
from esitieto.web.i18n import messages
from esitieto.web.sso import CountySignIn, check_sso_settings, refusal_code
from models import AuditEvent, Role, Station, StationMembership, User
from tests.esitieto.test_web import _csrf
from tests.peers.oidc_provider import Provider, running_provider, signing_key
from tests.servers import free_port

ISSUER = "https://login.example-county.fi"
MAPPING = ClaimMapping(
    role_claim="roles",
    roles={r.value: r.value for r in Role},
    station_claim="stations",
    stations={},
    username_claim="preferred_username",
    name_claim="name",
)


def _claims(**extra: Any) -> dict[str, Any]:
    return {"iss": ISSUER, "sub": "s-1", "preferred_username": "hanna", "name": "Hanna H", **extra}


def test_the_claims_give_the_role_and_only_stations_that_exist() -> None:
    identity = read_claims(
        _claims(roles=["nurse", "something-else"], stations=["north", "nowhere"]),
        MAPPING,
        ["north", "south"],
    )
    assert identity.role == Role.NURSE
    assert identity.station_ids == {"north"}
    assert (identity.username, identity.display_name) == ("hanna", "Hanna H")


def test_of_several_roles_the_most_capable_station_role_wins() -> None:
    both = read_claims(_claims(roles=["region", "nurse", "station_lead"]), MAPPING, [])
    assert both.role == Role.STATION_LEAD
    assert read_claims(_claims(roles="region"), MAPPING, []).role == Role.REGION


def test_the_provider_names_are_mapped_and_nested_claims_read() -> None:
    keycloak = ClaimMapping(
        role_claim="realm_access.roles",
        roles={"esitieto-hoitaja": "nurse"},
        station_claim="groups",
        stations={"grp-7f3a": "north"},
        username_claim="preferred_username",
        name_claim="name",
    )
    claims = _claims(realm_access={"roles": ["esitieto-hoitaja"]}, groups=["grp-7f3a", "north"])
    identity = read_claims(claims, keycloak, ["north", "south"])
    assert identity.role == Role.NURSE
    # with a map, only mapped values count: a raw station id in the claim is not enough
    assert identity.station_ids == {"north"}


@pytest.mark.parametrize(
    "claims",
    [
        _claims(roles=["visitor"]),
        _claims(),
        _claims(roles={"nurse": True}),
        _claims(roles=["Nurse"]),  # names are matched exactly
    ],
)
def test_claims_without_a_known_role_let_nobody_in(claims: dict[str, Any]) -> None:
    with pytest.raises(SsoRefused) as refused:
        read_claims(claims, MAPPING, ["north"])
    assert refused.value.code == "no_role"


def test_an_identity_needs_issuer_and_subject() -> None:
    with pytest.raises(SsoRefused):
        read_claims({"iss": ISSUER, "roles": ["nurse"]}, MAPPING, [])


def test_an_account_is_linked_by_issuer_and_subject_and_follows_the_claims(
    runtime: Runtime,
) -> None:
    with runtime.db.session() as s:
        s.add(Station(id="north", name="Pohjoinen", phone_number="+358900000071"))
        s.add(Station(id="south", name="Etelä", phone_number="+358900000072"))
    with runtime.db.session() as s:
        first = read_claims(_claims(roles=["nurse"], stations=["north"]), MAPPING, ["north"])
        user_id = sign_in_account(s, first).id
    with runtime.db.session() as s:
        moved = read_claims(
            _claims(roles=["station_lead"], stations=["south"], name="Hanna Uusi"),
            MAPPING,
            ["north", "south"],
        )
        assert sign_in_account(s, moved).id == user_id  # the same account, not a new one
    with runtime.db.session() as s:
        user = s.get(User, user_id)
        assert user is not None
        assert (user.sso_issuer, user.sso_subject) == (ISSUER, "s-1")
        assert user.role == Role.STATION_LEAD and user.display_name == "Hanna Uusi"
        assert user.password_hash is None
        memberships = select(StationMembership.station_id).where(
            StationMembership.user_id == user_id
        )
        assert s.scalars(memberships).all() == ["south"]
        actions = s.scalars(
            select(AuditEvent.action).where(AuditEvent.object_id == user_id).order_by(AuditEvent.at)
        ).all()
        assert actions.count("staff_created") == 1 and actions.count("staff_changed") == 2


def test_a_provider_username_never_takes_over_a_local_account(runtime: Runtime) -> None:
    """The demo nurse ``hoitaja`` has a password account; a token naming the same username
    gets an account of its own, and the local one keeps its role and stations."""
    with runtime.db.session() as s:
        local = s.scalar(select(User).where(User.username == "hoitaja"))
        assert local is not None
        local_id, local_role = local.id, local.role
        identity = read_claims(
            _claims(preferred_username="hoitaja", roles=["admin"], stations=["demo"]),
            MAPPING,
            ["demo"],
        )
        linked = sign_in_account(s, identity)
        assert linked.id != local_id and linked.username != "hoitaja"
    with runtime.db.session() as s:
        kept = s.get(User, local_id)
        assert kept is not None and kept.role == local_role and kept.sso_subject is None


def test_a_deactivated_account_stays_out_whatever_the_claims(runtime: Runtime) -> None:
    identity = read_claims(_claims(roles=["nurse"]), MAPPING, [])
    with runtime.db.session() as s:
        sign_in_account(s, identity).is_active = False
    with runtime.db.session() as s, pytest.raises(SsoRefused) as refused:
        sign_in_account(s, identity)
    assert refused.value.code == "deactivated"


# --- ID tokens against a real provider's published keys -------------------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with running_provider({}, ["http://127.0.0.1:9/login/sso/callback"], log) as running:
        yield running


def sso(issuer: str, **extra: Any) -> SsoSettings:
    return SsoSettings(issuer=issuer, roles={r.value: r.value for r in Role}, **extra)


def _sign_in(provider: Provider, **extra: Any) -> CountySignIn:
    return CountySignIn(
        sso(
            provider.issuer,
            client_id=provider.client_id,
            client_secret=SecretStr(provider.client_secret),
            **extra,
        )
    )


def _token(provider: Provider, key: Any = None, alg: str = "RS256", **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "sub": "s-1",
        "aud": provider.client_id,
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
        "roles": ["nurse"],
    }
    claims.update(changes)
    signer = key if key is not None else provider.key
    header = {"alg": alg, "kid": provider.key.kid}
    return jwt.encode(header, claims, signer, algorithms=[alg])


def _unsigned(provider: Provider) -> str:
    """The same claims with ``"alg": "none"`` and no signature at all."""
    _, claims, _ = _token(provider).split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{header}.{claims}."


def _verify(
    provider: Provider, id_token: str, nonce: str = "n-1", announced: list[str] | None = None
) -> dict[str, Any]:
    """As the callback verifies a token from the token endpoint (``announced``: the signing
    algorithms the provider's discovery document names instead of its own)."""
    sign_in = _sign_in(provider)

    async def verify() -> Any:
        if announced is not None:
            await sign_in.client.load_server_metadata()
            sign_in.client.server_metadata["id_token_signing_alg_values_supported"] = announced
        await sign_in.metadata()
        token = {"id_token": id_token, "access_token": "opaque"}
        options = sign_in.claims_options()
        return await sign_in.client.parse_id_token(token, nonce=nonce, claims_options=options)

    return dict(asyncio.run(verify()))


@pytest.mark.slow  # a Node.js process
def test_a_token_signed_by_the_provider_for_us_is_accepted(provider: Provider) -> None:
    claims = _verify(provider, _token(provider))
    assert claims["sub"] == "s-1" and claims["roles"] == ["nurse"]


@pytest.mark.slow  # a Node.js process
@pytest.mark.parametrize(
    ("forge", "why"),
    [
        pytest.param(lambda p: _token(p, key=signing_key(p.key.kid)), "bad_signature", id="key"),
        pytest.param(lambda p: _token(p, iss="https://evil.example"), "iss", id="issuer"),
        pytest.param(lambda p: _token(p, aud="other-app", azp="other-app"), "aud", id="audience"),
        pytest.param(lambda p: _token(p, aud="other-app", azp=p.client_id), "aud", id="azp-ours"),
        pytest.param(lambda p: _token(p, aud=["other-app"]), "aud", id="audience-list"),
        pytest.param(lambda p: _token(p, exp=int(time.time()) - 600), "expired", id="expired"),
        pytest.param(lambda p: _token(p, nonce="replayed"), "nonce", id="nonce"),
        pytest.param(
            lambda p: _token(p, key=OctKey.import_key(b"k" * 32), alg="HS256"), "HS256", id="hmac"
        ),
        pytest.param(lambda p: _token(p).rsplit(".", 1)[0] + ".", "bad_signature", id="cut"),
        pytest.param(_unsigned, "'none'", id="alg-none"),
    ],
)
def test_a_token_the_provider_did_not_issue_to_us_is_refused(
    provider: Provider, forge: Any, why: str
) -> None:
    with pytest.raises(JoseError) as refused:
        _verify(provider, forge(provider))
    assert why in str(refused.value)  # refused for this reason, not for another


@pytest.mark.slow  # a Node.js process
def test_a_provider_whose_discovery_names_another_issuer_is_not_used(
    provider: Provider, sqlite_settings: Settings
) -> None:
    """Configured as ``localhost`` while the provider calls itself ``127.0.0.1``: the sign-in
    does not start (and says the service cannot be used), rather than trusting it."""
    port = provider.issuer.rsplit(":", 1)[1]
    settings = sqlite_settings.model_copy(update={"sso": sso(f"http://localhost:{port}")})
    with TestClient(create_app(settings)) as client:
        answer = client.get("/login/sso", follow_redirects=False)
        assert answer.status_code == 503
        assert messages("fi").sso_unavailable in answer.text
        assert "localhost" not in answer.headers.get("location", "")


def test_password_sign_in_can_be_switched_off(sqlite_settings: Settings) -> None:
    settings = sqlite_settings.model_copy(
        update={"sso": sso("https://login.example-county.fi", password_login=False)}
    )
    with TestClient(create_app(settings)) as client:
        page = client.get("/login")
        assert page.status_code == 200
        assert 'id="sso-login"' in page.text and 'name="password"' not in page.text
        # the demo nurse's right password, with a valid form token: still not let in
        refused = client.post(
            "/login",
            data={"username": "hoitaja", "password": "demo-password", "csrf": _csrf(client)},
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.slow  # a Node.js process
def test_a_callback_nobody_started_is_refused_with_a_clear_page(
    provider: Provider, sqlite_settings: Settings
) -> None:
    """A bookmarked or replayed callback address: no state was kept for it in this browser."""
    settings = sqlite_settings.model_copy(update={"sso": sso(provider.issuer)})
    app = create_app(settings)
    with TestClient(app) as client:
        answer = client.get("/login/sso/callback?code=stolen&state=guessed")
        assert answer.status_code == 401
        assert messages("fi").sso_failed in answer.text
        assert client.get("/", follow_redirects=False).status_code == 303  # still signed out
        # a provider's error with a forged log line in it, sent by anyone: nothing is written
        client.get("/login/sso/callback", params={"error": "x\nlogin ok user=admin"})
        # and the provider's sign-out is not reachable by a link from another site
        gone = client.get("/logout/sso", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"] == "/login"
        with app.state.runtime.db.session() as s:
            failed = select(AuditEvent).where(AuditEvent.action == "login_failed")
            assert s.scalars(failed).all() == []


def test_a_provider_that_cannot_be_reached_leaves_a_clear_page(
    sqlite_settings: Settings,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = sqlite_settings.model_copy(update={"sso": sso(closed, timeout_s=2.0)})
    with TestClient(create_app(settings)) as client:
        answer = client.get("/login/sso", follow_redirects=False)
        assert answer.status_code == 503
        assert messages("fi").sso_unavailable in answer.text
        # the password form stays usable meanwhile (not switched off here)
        assert 'name="password"' in answer.text


@pytest.mark.slow  # a Node.js process
def test_a_provider_announcing_unsigned_tokens_still_gets_no_unsigned_token_through(
    provider: Provider,
) -> None:
    with pytest.raises(JoseError):
        _verify(provider, _unsigned(provider), announced=["none", "RS256"])
    assert _verify(provider, _token(provider), announced=["none", "RS256"])["sub"] == "s-1"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (SsoSettings(issuer="http://login.example-county.fi", roles={"n": "nurse"}), "https"),
        (SsoSettings(issuer=ISSUER), "ESITIETO_SSO__ROLES"),
        (SsoSettings(issuer=ISSUER, roles={"n": "nurses"}), "does not have"),
        (SsoSettings(issuer=ISSUER, roles={"n": "nurse"}, algorithms=["HS256", "none"]), "safe"),
    ],
)
def test_unsafe_or_unusable_settings_stop_the_start(settings: SsoSettings, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_sso_settings(settings)


def test_an_sso_account_never_takes_a_password(runtime: Runtime) -> None:
    """Else an administrator could keep a way in that the county's provider (its checks, its
    ending of access when someone leaves) knows nothing of."""
    identity = read_claims(_claims(roles=["admin"]), MAPPING, [])
    with runtime.db.session() as s:
        user = sign_in_account(s, identity)
        user_id, username = user.id, user.username
    change = AccountChange(display_name="Hanna", role=Role.ADMIN, password="pitkä ja vahva 42")
    with runtime.db.session() as s, pytest.raises(AccountError) as refused:
        update_account(s, None, user_id, change)
    assert refused.value.code == "sso_password"
    with runtime.db.session() as s:  # nor does one put there by other means open it
        account = s.get(User, user_id)
        assert account is not None
        account.password_hash = hash_password("pitkä ja vahva 42")
    with runtime.db.session() as s:
        assert authenticate(s, username, "pitkä ja vahva 42") is None


def test_a_second_sign_in_that_lost_the_race_finds_the_first_ones_account(
    runtime: Runtime,
) -> None:
    """Two tabs or a double click sign a new person in at once: both checked for the account
    before either created it. The one that comes second hits the unique (issuer, subject)
    and takes the account the first one made."""
    identity = read_claims(_claims(roles=["nurse"]), MAPPING, [])
    with runtime.db.session() as s:
        first = sign_in_account(s, identity).id
    with runtime.db.session() as s:
        assert create_linked_account(s, identity).id == first
    with runtime.db.session() as s:
        assert len(s.scalars(select(User).where(User.sso_subject == "s-1")).all()) == 1


def test_the_audit_trail_names_only_standardrefusal_codes() -> None:
    assert refusal_code(OAuthError(error="access_denied")) == "oauth:access_denied"
    assert refusal_code(OAuthError(error="x\nlogin ok user=admin")) == "oauth:other"
