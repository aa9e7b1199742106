"""Security headers: health data is never framed, sniffed or stored by a browser."""

from __future__ import annotations

from fastapi.testclient import TestClient

from esitieto.app import create_app
from esitieto.runtime import Runtime
from tests.conftest import API


def test_health_answers_are_not_stored_and_static_files_are(client: TestClient) -> None:
    for response in (
        client.post("/api/v1/analyze", json={"text": "Yskää."}, headers=API),
        client.get("/login"),
    ):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers  # plain http here
    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.headers.get("cache-control") != "no-store"


def test_https_deployments_also_pin_https(runtime: Runtime) -> None:
    runtime.settings.web.secure_cookies = True
    with TestClient(create_app(runtime=runtime)) as secure:
        assert "max-age" in secure.get("/login").headers["strict-transport-security"]


def test_health_details_and_the_api_description_are_for_staff(client: TestClient) -> None:
    from tests.esitieto.test_web import login

    probe = client.get("/healthz")
    assert probe.status_code == 200 and probe.json() == {"status": "ok"}
    assert client.get("/openapi.json", follow_redirects=False).status_code in (303, 401)
    assert client.get("/docs").status_code == 404  # no page that loads scripts from a CDN
    login(client)
    details = client.get("/healthz").json()
    assert details["status"] == "ok" and details["database"] == "ok"
    assert "/api/v1/analyze" in client.get("/openapi.json").json()["paths"]
