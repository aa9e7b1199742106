"""A local FHIR R4 server for the export tests: the county's server cannot be reached from
here, so this one stands in at the HTTP boundary with the real API's shape. It checks every
Bundle it receives against FHIR R4 4.0.1 models (``fhirclient``, strict: another library than
the one that built it), signs clients in with OAuth2 client credentials, runs transactions
with conditional create (``ifNoneExist``) and conditional update (``PUT Type?identifier=…``:
none found creates, one found is replaced under its id, several is 412) and answers with a
transaction-response Bundle or an OperationOutcome. It can be told to be down."""

from __future__ import annotations

import base64
import itertools
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fhirclient.models.bundle import Bundle as R4Bundle

from tests.servers import serving

FHIR_JSON = "application/fhir+json"


@dataclass
class FhirServer:
    client_id: str = "esitieto"
    client_secret: str = "s3cret"
    down: bool = False
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    posts: int = 0
    refused: int = 0
    tokens: set[str] = field(default_factory=set)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def find(self, kind: str, system: str, value: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.resources.get(kind, [])
            if any(i.get("system") == system and i.get("value") == value for i in _identifiers(r))
        ]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/token")
        async def token(request: Request) -> JSONResponse:
            form = await request.form()
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            if request.headers.get("Authorization") != f"Basic {expected}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            value = secrets.token_urlsafe(16)
            self.tokens.add(value)
            return JSONResponse({"access_token": value, "token_type": "Bearer", "expires_in": 300})

        @app.post("/fhir")
        async def transaction(request: Request) -> JSONResponse:
            if self.down:
                return _outcome(503, "transient", "server is down for maintenance")
            auth = request.headers.get("Authorization", "")
            if auth.removeprefix("Bearer ") not in self.tokens:
                return _outcome(401, "login", "a valid bearer token is needed")
            self.posts += 1
            try:
                body = await request.json()
                R4Bundle(body, strict=True)  # every resource of it, R4 4.0.1
            except Exception as exc:
                self.refused += 1
                return _outcome(400, "invalid", f"not a valid R4 Bundle: {exc}"[:500])
            if body.get("type") != "transaction":
                self.refused += 1
                return _outcome(400, "invalid", "only transaction bundles are accepted")
            return self._run(body)

        @app.get("/fhir/{kind}")
        async def search(kind: str, identifier: str) -> JSONResponse:
            system, _, value = identifier.partition("|")
            found = self.find(kind, system, value)
            return JSONResponse(
                {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": len(found),
                    "entry": [{"resource": r} for r in found],
                }
            )

        return app

    def _run(self, body: dict[str, Any]) -> JSONResponse:
        staged: list[tuple[str, dict[str, Any]]] = []
        replaced: list[tuple[str, dict[str, Any]]] = []
        answers = []
        urls: dict[str, str] = {}
        for entry in body.get("entry", []):
            resource, request = entry["resource"], entry["request"]
            kind = resource["resourceType"]
            update = request["method"] == "PUT"
            search = request["url"].partition("?")[2] if update else request.get("ifNoneExist", "")
            system, _, value = search.removeprefix("identifier=").partition("|")
            existing = self.find(kind, system, value) if system else []
            existing += [r for k, r in staged if k == kind and _has(r, system, value)]
            if len(existing) > 1 and update:
                return _outcome(412, "multiple-matches", f"{kind}?{search} matches several")
            if existing:
                urls[entry["fullUrl"]] = f"{kind}/{existing[0]['id']}"
                if update:
                    replaced.append((kind, {**resource, "id": existing[0]["id"]}))
                answers.append({"response": {"status": "200 OK"}})
                continue
            resource = {**resource, "id": str(next(self._ids))}
            urls[entry["fullUrl"]] = f"{kind}/{resource['id']}"
            staged.append((kind, resource))
            answers.append(
                {"response": {"status": "201 Created", "location": urls[entry["fullUrl"]]}}
            )
        for kind, resource in staged:  # urn:uuid references now point at the stored resources
            self.resources.setdefault(kind, []).append(_resolve(resource, urls))
        for kind, resource in replaced:
            stored = self.resources[kind]
            index = next(i for i, r in enumerate(stored) if r["id"] == resource["id"])
            stored[index] = _resolve(resource, urls)
        response = {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
        return JSONResponse(response, media_type=FHIR_JSON)


def _identifiers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    ids = resource.get("identifier") or []
    return ids if isinstance(ids, list) else [ids]


def _has(resource: dict[str, Any], system: str, value: str) -> bool:
    return any(
        i.get("system") == system and i.get("value") == value for i in _identifiers(resource)
    )


def _resolve(value: Any, urls: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: urls.get(v, v) if k == "reference" else _resolve(v, urls) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve(v, urls) for v in value]
    return value


def _outcome(status: int, code: str, text: str) -> JSONResponse:
    return JSONResponse(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        },
        status_code=status,
        media_type=FHIR_JSON,
    )


def running(server: FhirServer) -> AbstractContextManager[str]:
    """The server on a free loopback port; yields its base URL (``…/fhir`` is the FHIR base)."""
    return serving(server.app())
