"""Oversized request bodies are refused before anything reads them."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from esitieto.runtime import Runtime
from tests.conftest import API


def test_a_body_over_the_limit_is_refused_whether_declared_or_streamed(
    client: TestClient, runtime: Runtime
) -> None:
    limit = runtime.settings.web.max_body_bytes
    big = b"x" * (limit + 1)
    declared = client.post("/api/v1/analyze", content=big, headers=API)
    assert declared.status_code == 413 and str(limit) in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    streamed = client.post(
        "/api/v1/analyze", content=chunks(), headers={**API, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    signed_in_or_not = client.post("/login", content=big)
    assert signed_in_or_not.status_code == 413


def test_a_body_under_the_limit_is_read_as_usual(client: TestClient) -> None:
    ok = client.post("/api/v1/analyze", json={"text": "Yskää kolme päivää." * 500}, headers=API)
    assert ok.status_code == 200
    assert (
        client.post(
            "/api/v1/analyze", content=b"{", headers={**API, "content-length": "x"}
        ).status_code
        == 400
    )
