"""A finished call reaches the county's FHIR server exactly once: through the outbox, with
retries while the server is down, and a clear error on the case when it refuses."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from esitieto.app import create_app, make_worker
from esitieto.runtime import Runtime
from models import AuditEvent, Call, CallState, Job, JobKind, JobState
from tests.conftest import SYSTEM, drain, finished_call
from tests.esitieto.test_web import _csrf, login
from tests.integrations.fhir_server import FhirServer


def _encounters(server: FhirServer, call_id: str) -> int:
    return len(server.find("Encounter", SYSTEM, f"{call_id}/encounter"))


def test_a_finished_call_reaches_the_fhir_server_once(
    exporting: Runtime, fhir_server: tuple[FhirServer, str]
) -> None:
    server, _ = fhir_server
    call_id = finished_call(exporting)
    drain(exporting)
    assert _encounters(server, call_id) == 1
    with exporting.db.session() as s:
        call = s.get(Call, call_id)
        assert call is not None and call.state == CallState.READY
        assert call.fhir_exported_at is not None and call.fhir_error is None
    # a retried export (a lost answer, a restart) adds nothing
    from integrations.jobs import enqueue

    with exporting.db.session() as s:
        enqueue(s, JobKind.EXPORT_FHIR, call_id)
    drain(exporting)
    assert server.posts == 2
    assert _encounters(server, call_id) == 1
    assert len(server.resources["ServiceRequest"]) == 1


def test_a_server_down_for_a_while_gets_the_case_when_it_is_back(
    exporting: Runtime, fhir_server: tuple[FhirServer, str]
) -> None:
    server, _ = fhir_server
    server.down = True
    call_id = finished_call(exporting)
    worker = make_worker(exporting)
    while worker.run_one():  # the call's own jobs, then a first failed export (backoff after)
        pass
    with exporting.db.session() as s:
        job = s.scalar(select(Job).where(Job.kind == JobKind.EXPORT_FHIR, Job.key == call_id))
        assert job is not None and job.state == JobState.QUEUED and job.attempts >= 1
    assert _encounters(server, call_id) == 0
    server.down = False
    drain(exporting)
    assert _encounters(server, call_id) == 1


def test_a_server_that_refuses_leaves_a_clear_error_on_the_case(
    exporting: Runtime, fhir_server: tuple[FhirServer, str]
) -> None:
    server, _ = fhir_server
    server.client_secret = "rotated"  # our credentials no longer work
    call_id = finished_call(exporting)
    drain(exporting)
    with exporting.db.session() as s:
        call = s.get(Call, call_id)
        assert call is not None and call.state == CallState.READY  # the case is not lost
        assert call.fhir_exported_at is None
        assert call.fhir_error and "token endpoint answered 401" in call.fhir_error
    assert not server.resources
    with TestClient(create_app(runtime=exporting)) as client:
        assert login(client).status_code in (302, 303)
        page = client.get(f"/cases/{call_id}").text
    assert 'id="fhir-status"' in page and "token endpoint answered 401" in page


def test_staff_get_the_cases_bundle_and_the_view_is_audited(exporting: Runtime) -> None:
    call_id = finished_call(exporting)
    drain(exporting)
    with TestClient(create_app(runtime=exporting)) as client:
        assert client.get(f"/api/v1/cases/{call_id}/fhir").status_code == 401
        assert login(client).status_code in (302, 303)
        answer = client.get(f"/api/v1/cases/{call_id}/fhir")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/fhir+json")
        assert answer.json()["type"] == "transaction"
        assert client.get("/api/v1/cases/no-such-case/fhir").status_code == 404
    with exporting.db.session() as s:
        seen = s.scalars(select(AuditEvent).where(AuditEvent.action == "view_case_fhir")).all()
        assert [e.object_id for e in seen] == [call_id]


def test_a_nurses_later_change_replaces_the_request_in_the_record(
    exporting: Runtime, fhir_server: tuple[FhirServer, str]
) -> None:
    """Exported as pretriage decided; the nurse then raises the urgency: the case is sent
    again, and the record has one ServiceRequest, hers, and still one of everything else."""
    server, _ = fhir_server
    call_id = finished_call(exporting)
    drain(exporting)
    (before,) = server.resources["ServiceRequest"]
    counts = {kind: len(found) for kind, found in server.resources.items()}
    with TestClient(create_app(runtime=exporting)) as client:
        assert login(client).status_code in (302, 303)
        form = {
            "urgency": "emergency",
            "route": "nurse_queue",
            "reason": "Soitin takaisin: rintakipu",
            "csrf": _csrf(client, f"/cases/{call_id}"),
        }
        saved = client.post(f"/cases/{call_id}/override", data=form, follow_redirects=False)
        assert saved.status_code == 303
    drain(exporting)
    assert server.posts == 2
    assert {kind: len(found) for kind, found in server.resources.items()} == counts
    (after,) = server.resources["ServiceRequest"]
    assert after["id"] == before["id"] and before["priority"] != "stat"
    assert after["priority"] == "stat" and "nurse_queue" in after["note"][0]["text"]
    assert after["encounter"] == before["encounter"]  # still points at the stored encounter
