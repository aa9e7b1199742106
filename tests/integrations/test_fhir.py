"""The FHIR export: the Bundle a case becomes, and its delivery to a local R4 server that
validates what it receives (``fhir_server.py``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from fhirclient.models.bundle import Bundle as R4Bundle
from pydantic import SecretStr

from integrations.fhir.bundle import HETU_SYSTEM, FhirBuildError, build_bundle
from integrations.fhir.client import FhirClient, FhirError, FhirSettings
from integrations.fhir.schemas import CaseRecord, ReportedSymptom
from tests.integrations.fhir_server import FhirServer, running

CASE = CaseRecord(
    case_id="case-1",
    station_id="test-asema",
    station_name="Testiaseman terveysasema",
    started_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    ended_at=datetime(2026, 3, 2, 8, 3, tzinfo=UTC),
    language="fi",
    for_whom="self",
    reason="Kuume ja yskä 3 vrk",
    note="Syy: kuume ja yskä\nOireet: <yskä> & kuume",
    urgency="non_urgent",
    route="callback",
    ruleset_version="2026.11-3",
    decided_by="pretriage",
    symptoms=(ReportedSymptom("A03", "Kuume", "kuumetta"), ReportedSymptom("R05", "Yskä", "yskää")),
    temperature_c=38.5,
    callback_start=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    callback_end=datetime(2026, 3, 2, 11, 0, tzinfo=UTC),
)


def resources(bundle: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in bundle["entry"]:
        out.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    return out


def test_a_case_is_a_valid_r4_transaction_with_its_facts() -> None:
    bundle = build_bundle(CASE)
    R4Bundle(bundle, strict=True)  # R4 4.0.1, by another library than the one that built it
    assert bundle["type"] == "transaction"
    found = resources(bundle)
    codes = [c["code"]["coding"][0]["code"] for c in found["Condition"]]
    assert codes == ["A03", "R05"]
    (temperature,) = found["Observation"]
    assert temperature["code"]["coding"][0]["code"] == "8310-5"
    assert temperature["valueQuantity"] == {
        "value": 38.5,
        "unit": "Cel",
        "system": "http://unitsofmeasure.org",
        "code": "Cel",
    }
    (encounter,) = found["Encounter"]
    assert encounter["class"]["code"] == "VR" and encounter["status"] == "finished"
    (request,) = found["ServiceRequest"]
    assert request["priority"] == "routine"
    assert "2026.11-3" in request["note"][0]["text"]
    assert request["occurrencePeriod"]["start"].startswith("2026-03-02T10:00")
    (note,) = found["Composition"]
    assert "&lt;yskä&gt; &amp; kuume" in note["section"][0]["text"]["div"]
    # without a keyed identity code, no henkilötunnus: a patient known only by this case
    (patient,) = found["Patient"]
    assert all(i["system"] != HETU_SYSTEM for i in patient["identifier"])
    # every entry is conditional on its own identifier: created once, and the decision
    # (which a nurse may change later) updated in place
    searches = [
        e["request"].get("ifNoneExist") or e["request"]["url"].partition("?")[2]
        for e in bundle["entry"]
    ]
    assert all(search.startswith("identifier=") for search in searches)
    assert len(set(searches)) == len(bundle["entry"])
    methods = {e["resource"]["resourceType"]: e["request"]["method"] for e in bundle["entry"]}
    assert methods.pop("ServiceRequest") == "PUT" and set(methods.values()) == {"POST"}


def test_the_identity_code_goes_in_only_when_keyed() -> None:
    keyed = replace(CASE, identity_code="010101-123N", birth_date=date(2001, 1, 1), sex="female")
    (patient,) = resources(build_bundle(keyed))["Patient"]
    assert patient["identifier"] == [{"system": HETU_SYSTEM, "value": "010101-123N"}]
    assert patient["birthDate"] == "2001-01-01" and patient["gender"] == "female"


@pytest.mark.parametrize(("urgency", "priority"), [("emergency", "stat"), ("urgent", "asap")])
def test_the_decision_sets_the_requests_priority(urgency: str, priority: str) -> None:
    case = replace(CASE, urgency=urgency, route="nurse_queue", uncertain=True)
    (request,) = resources(build_bundle(case))["ServiceRequest"]
    assert request["priority"] == priority
    assert "occurrencePeriod" not in request
    assert "uncertain" in request["note"][0]["text"]


def test_an_unbuildable_case_is_a_clear_error() -> None:
    with pytest.raises(FhirBuildError, match="case-1"):
        build_bundle(replace(CASE, symptoms=(ReportedSymptom("A03", "", ""),)), case_system="")


def settings(url: str, secret: str = "s3cret") -> FhirSettings:
    return FhirSettings(
        base_url=f"{url}/fhir",
        token_url=f"{url}/token",
        client_id="esitieto",
        client_secret=SecretStr(secret),
        timeout_s=5,
    )


def test_a_bundle_posted_twice_is_stored_once() -> None:
    server = FhirServer()
    with running(server) as url:
        client = FhirClient(settings(url))
        first = client.post_bundle(build_bundle(CASE))
        again = client.post_bundle(build_bundle(CASE))
    assert first.created == len(build_bundle(CASE)["entry"]) and first.existing == 0
    assert again.created == 0 and again.existing == first.created
    assert len(server.find("Encounter", "urn:esitieto:case", "case-1/encounter")) == 1
    assert len(server.resources["Condition"]) == 2
    # references between the resources point at what the server stored
    (encounter,) = server.resources["Encounter"]
    assert encounter["subject"]["reference"].startswith("Patient/")


def test_a_server_that_is_down_is_a_retryable_error_and_nothing_is_lost() -> None:
    server = FhirServer(down=True)
    with running(server) as url:
        client = FhirClient(settings(url))
        with pytest.raises(FhirError) as down:
            client.post_bundle(build_bundle(CASE))
        assert down.value.retryable
        server.down = False
        assert client.post_bundle(build_bundle(CASE)).created > 0


def test_an_unreachable_server_is_retryable() -> None:
    client = FhirClient(FhirSettings(base_url="http://127.0.0.1:9/fhir", timeout_s=2))
    with pytest.raises(FhirError, match="unreachable") as err:
        client.post_bundle(build_bundle(CASE))
    assert err.value.retryable


def test_a_refused_bundle_says_why_and_is_not_retried() -> None:
    server = FhirServer()
    bundle = build_bundle(CASE)
    del bundle["entry"][0]["request"]["method"]  # what a broken builder would send
    with (
        running(server) as url,
        pytest.raises(FhirError, match="refused the bundle \\(400\\)") as err,
    ):
        FhirClient(settings(url)).post_bundle(bundle)
    assert not err.value.retryable
    assert str(err.value).endswith("(400): invalid")  # the kind of problem
    assert "Kuume" not in str(err.value)  # never what the server quoted from the bundle
    assert server.refused == 1 and not server.resources


def test_wrong_client_credentials_are_refused_clearly() -> None:
    server = FhirServer()
    with (
        running(server) as url,
        pytest.raises(FhirError, match="token endpoint answered 401") as err,
    ):
        FhirClient(settings(url, secret="wrong")).post_bundle(build_bundle(CASE))
    assert not err.value.retryable
    assert server.posts == 0
