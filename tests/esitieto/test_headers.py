"""Security headers: health data is never framed, sniffed or stored by a browser."""

from __future__ import annotations

from fastapi.testclient import TestClient

from esitieto.app import create_app
from esitieto.runtime import Runtime


def test_health_answers_are_not_stored_and_static_files_are(client: TestClient) -> None:
    for response in (
        client.post("/api/v1/analyze", json={"text": "Yskää."}),
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
