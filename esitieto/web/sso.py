"""Staff sign-in through the county's OpenID Connect provider (Authlib).

Authorization code flow with PKCE (S256), a nonce and ``prompt=login`` (by default: a shared
hospital PC must not sign the next nurse in as the previous one from the provider's own
session); the state, the nonce and the code verifier wait in this browser's signed session
cookie. The ID token is checked by Authlib and joserfc: its signature against the provider's
published keys (fetched again when a new key id appears, and with the discovery document at
least hourly, so a withdrawn key stops counting), only with the algorithms both the provider
announces and ``ESITIETO_SSO__ALGORITHMS`` allows (never ``none`` or an HMAC), ``iss`` equal
to the configured issuer, ``aud`` containing our client id, ``azp``, ``exp``, ``iat`` and the
nonce. The discovery document must name exactly the configured issuer, so a look-alike
provider behind a redirect cannot slip in.

The claims then become an account (``esitieto/sso.py``) and a session like any other
(``start_session``, method ``sso``): every page behind it is unchanged. Signing out ends the
session here and then at the provider (RP-initiated logout).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from authlib.integrations.starlette_client import OAuth, OAuthError, StarletteOAuth2App
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool

from esitieto.runtime import Runtime
from esitieto.settings import SsoSettings
from esitieto.sso import ClaimMapping, SsoRefused, known_stations, read_claims, sign_in_account
from esitieto.web.auth import NEXT_KEY, SIGN_OUT_AT_PROVIDER_KEY, safe_next, start_session
from esitieto.web.pages import login_page
from models import AuditEvent, Role

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

STATE_KEY_PREFIX = "_state_county_"
"""Where Authlib keeps a sign-in in progress in the session (``_state_<client>_<state>``)."""


def _unreachable_errors() -> tuple[type[Exception], ...]:
    """What a provider out of reach (or answering garbage) raises. Authlib sends through
    ``httpx2`` when that is installed, else through ``httpx``: either's errors count."""
    errors: list[type[Exception]] = [httpx.HTTPError, ValueError]
    try:
        import httpx2

        errors.append(httpx2.HTTPError)
    except ImportError:
        pass
    return tuple(errors)


UNREACHABLE = _unreachable_errors()
METADATA_MAX_AGE_S = 3600.0
"""The discovery document and the keys are read again at least this often."""
UNSAFE_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
"""Never accepted, whatever the settings say: no signature, or one made with a secret the
client also holds."""
OAUTH_ERRORS = frozenset(
    {
        "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
        "invalid_scope", "server_error", "temporarily_unavailable", "invalid_grant",
        "invalid_client", "unsupported_grant_type", "login_required", "interaction_required",
        "consent_required", "account_selection_required", "mismatching_state",
    }
)  # fmt: skip
"""OAuth and OpenID Connect error codes, as the audit trail names them (anything else in a
callback's ``error`` is ``other``: the parameter is the sender's free text)."""


def check_sso_settings(settings: SsoSettings) -> None:
    """Refuse at start-up what would make sign-in unsafe or let nobody in."""
    if not settings.issuer:
        raise ValueError("single sign-on needs ESITIETO_SSO__ISSUER")
    parts = urlsplit(settings.issuer)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError("ESITIETO_SSO__ISSUER must be an https:// address")
    if not settings.roles:
        raise ValueError(
            "ESITIETO_SSO__ROLES must map the provider's role names to Esitieto's roles, "
            'e.g. {"county-nurse": "nurse"}'
        )
    wrong = sorted(set(settings.roles.values()) - {r.value for r in Role})
    if wrong:
        raise ValueError(f"ESITIETO_SSO__ROLES names roles Esitieto does not have: {wrong}")
    if not frozenset(settings.algorithms) - UNSAFE_ALGORITHMS:
        raise ValueError("ESITIETO_SSO__ALGORITHMS allows no safe signing algorithm")


NO_SIGN_OUT: tuple[type[Exception], ...] = (SsoRefused, *UNREACHABLE)


class CountySignIn:
    """The configured provider: its Authlib client and how its claims read."""

    def __init__(self, settings: SsoSettings) -> None:
        check_sso_settings(settings)
        assert settings.issuer
        self.issuer = settings.issuer
        self.redirect_uri = settings.redirect_uri
        self.password_login = settings.password_login
        self.mapping = ClaimMapping(
            role_claim=settings.role_claim,
            roles=dict(settings.roles),
            station_claim=settings.station_claim,
            stations=dict(settings.stations),
            username_claim=settings.username_claim,
            name_claim=settings.name_claim,
        )
        self.algorithms = frozenset(settings.algorithms) - UNSAFE_ALGORITHMS
        self.prompt = settings.prompt
        secret = settings.client_secret.get_secret_value() if settings.client_secret else None
        self.client: StarletteOAuth2App = OAuth().register(
            name="county",
            client_id=settings.client_id,
            client_secret=secret,
            server_metadata_url=self.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={
                "scope": settings.scope,
                "code_challenge_method": "S256",
                "timeout": settings.timeout_s,
            },
        )

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (and its keys, once fetched), checked to be the
        configured issuer's and narrowed to the signing algorithms we accept; read again
        when older than ``METADATA_MAX_AGE_S``."""
        cached = self.client.server_metadata
        if time.time() - float(cached.get("_loaded_at", 0)) > METADATA_MAX_AGE_S:
            cached.clear()
        metadata: dict[str, Any] = await self.client.load_server_metadata()
        if metadata.get("issuer") != self.issuer:
            cached.clear()  # fetched again next time: maybe fixed
            raise SsoRefused("issuer_mismatch")
        # Authlib verifies with the algorithms the document announces: only ours among them.
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        usable = [alg for alg in announced if alg in self.algorithms]
        if not usable:
            cached.clear()
            raise SsoRefused("no_usable_algorithm")
        metadata["id_token_signing_alg_values_supported"] = usable
        return metadata

    def claims_options(self) -> dict[str, Any]:
        """What an ID token must say, beyond what Authlib checks of its own accord."""
        return {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": self.client.client_id},
            "sub": {"essential": True},
        }

    async def verified_claims(self, request: Request) -> dict[str, Any]:
        """The callback's code exchanged and its ID token verified: the token's claims."""
        await self.metadata()
        token = await self.client.authorize_access_token(
            request, claims_options=self.claims_options()
        )
        claims = token.get("userinfo")
        if not claims:  # no ID token (or no nonce kept for it): nothing proves who this is
            raise SsoRefused("no_id_token")
        return dict(claims)


def county_sign_in(request: Request) -> CountySignIn | None:
    sign_in: CountySignIn | None = getattr(request.app.state, "sso", None)
    return sign_in


@router.get("/login/sso")
async def sso_start(request: Request, next: str | None = None) -> Response:
    """Off to the county's sign-in page (it comes back to ``sso_callback``)."""
    sign_in = county_sign_in(request)
    if sign_in is None:
        return RedirectResponse("/login", status_code=303)
    if target := safe_next(next):
        request.session[NEXT_KEY] = target
    redirect_uri = sign_in.redirect_uri or str(request.url_for("sso_callback"))
    try:
        await sign_in.metadata()
        extra = {"prompt": sign_in.prompt} if sign_in.prompt else {}
        response: Response = await sign_in.client.authorize_redirect(request, redirect_uri, **extra)
    except UNREACHABLE as exc:
        log.warning("single sign-on: the provider cannot be reached (%s)", type(exc).__name__)
        return login_page(request, "sso_unavailable", status=503)
    except SsoRefused as exc:
        log.error("single sign-on refused before sign-in: %s", exc.code)
        return login_page(request, "sso_unavailable", status=503)
    return response


@router.get("/login/sso/callback", name="sso_callback")
async def sso_callback(request: Request) -> Response:
    """The provider sent the browser back: verify, find or create the account, sign in."""
    sign_in = county_sign_in(request)
    if sign_in is None:
        return RedirectResponse("/login", status_code=303)
    runtime: Runtime = request.app.state.runtime
    started_here = any(str(key).startswith(STATE_KEY_PREFIX) for key in request.session)
    try:
        claims = await sign_in.verified_claims(request)
    except (OAuthError, JoseError, SsoRefused) as exc:  # before the others: a refusal
        # Why, for the log and the audit trail; never the token or the provider's free text.
        code = exc.code if isinstance(exc, SsoRefused) else refusal_code(exc)
        log.warning("single sign-on refused: %s", code)
        if started_here:  # a stray or forged callback writes nothing for anyone to read
            await run_in_threadpool(_audit_refusal, runtime, code, None)
        return login_page(request, "sso_failed", status=401)
    except UNREACHABLE as exc:
        log.warning("single sign-on: the provider cannot be reached (%s)", type(exc).__name__)
        return login_page(request, "sso_unavailable", status=503)

    def sign_in_here() -> tuple[str, str | None]:
        with runtime.db.session() as session:
            identity = read_claims(claims, sign_in.mapping, known_stations(session))
            user = sign_in_account(session, identity)
            session.add(
                AuditEvent(
                    user_id=user.id,
                    action="login",
                    object_type="user",
                    object_id=user.id,
                    detail={"method": "sso"},
                )
            )
            start_session(request, session, user.id, method="sso")
            return user.role, user.language

    target = safe_next(request.session.get(NEXT_KEY))
    try:
        role, language = await run_in_threadpool(sign_in_here)
    except SsoRefused as exc:
        log.warning("single sign-on refused: %s", exc.code)
        await run_in_threadpool(_audit_refusal, runtime, exc.code, claims.get("sub"))
        key = exc.code if exc.code in ("no_role", "deactivated") else "failed"
        return login_page(request, f"sso_{key}", status=403)
    if language:
        request.session["lang"] = language
    home = "/region" if role == Role.REGION else "/"
    return RedirectResponse(target or home, status_code=303)


@router.get("/logout/sso")
async def sso_logout(request: Request) -> Response:
    """After signing out here, sign out at the provider too (it comes back to the login
    page). The session here is already gone; this only sends the browser on."""
    sign_in = county_sign_in(request)
    if sign_in is None or not request.session.pop(SIGN_OUT_AT_PROVIDER_KEY, False):
        return RedirectResponse("/login", status_code=303)
    try:
        metadata = await sign_in.metadata()
        if not metadata.get("end_session_endpoint"):
            return RedirectResponse("/login", status_code=303)
        # back to this site's login page, at the same address the provider sends sign-ins to
        callback = sign_in.redirect_uri
        back = urljoin(callback, "/login") if callback else str(request.url_for("login_form"))
        response: Response = await sign_in.client.logout_redirect(
            request, post_logout_redirect_uri=back, client_id=sign_in.client.client_id
        )
    except NO_SIGN_OUT as exc:
        log.warning("single sign-on: no sign-out at the provider (%s)", type(exc).__name__)
        return RedirectResponse("/login", status_code=303)
    return response


def refusal_code(exc: Exception) -> str:
    if isinstance(exc, OAuthError):
        return f"oauth:{exc.error if exc.error in OAUTH_ERRORS else 'other'}"
    return f"token:{type(exc).__name__}"[:64]


def _audit_refusal(runtime: Runtime, code: str, subject: object) -> None:
    with runtime.db.session() as session:
        session.add(
            AuditEvent(
                action="login_failed",
                object_type="sso_subject",
                object_id=str(subject)[:64] if subject else None,
                detail={"method": "sso", "reason": code},
            )
        )
