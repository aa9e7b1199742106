"""Security headers on every answer: health pages are not framed, sniffed, cached or leaked.

A pure ASGI middleware. The pages use only their own scripts and stylesheet (no inline script
or style, nothing from a CDN), so the content security policy can be strict. Health data
(pages, the API, recordings) is never stored by a browser or a proxy; the static files and the
icon keep their own caching.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""With single sign-on, ``form-action`` also names the provider's origin: the sign-out
form's redirect goes on to the provider's sign-out page, and browsers hold redirects after a
form to the same rule."""
CACHEABLE = ("/static/", "/favicon.ico")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https: bool, form_targets: tuple[str, ...] = ()) -> None:
        self.app = app
        self.https = https
        self.csp = " ".join((CSP, *form_targets))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith(CACHEABLE)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Content-Security-Policy", self.csp)
                if not cacheable:
                    headers["Cache-Control"] = "no-store"
                if self.https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, with_headers)
