"""A finished case → one FHIR transaction Bundle, built and validated with ``fhir.resources``.

The models are FHIR R4B (``fhir.resources.R4B``: no maintained library has R4 4.0.1 models on
pydantic 2); for the resources used here R4B's JSON is R4's, and the test server checks every
bundle against R4 4.0.1 models as well. What goes in, following the HL7 Finland base
profiles where they apply:

- ``Patient``: the henkilötunnus (system ``urn:oid:1.2.246.21``) only when the caller keyed
  it in, birth date and sex from it; otherwise a patient known only by this case.
- ``Organization``: the health station, identified by its station id.
- ``Encounter``: the telephone contact (class ``VR``, virtual), its start and end, the
  station as service provider.
- ``Condition`` per reported symptom: the reason for contact with its ICPC-2 code, the
  caller's words as a note, unconfirmed (told, not examined).
- ``Observation``: body temperature (LOINC 8310-5, °C) when the caller said one.
- ``Composition``: the nurse note (LOINC 34746-8, "Nurse Note").
- ``ServiceRequest``: the pretriage decision as what should happen next (a nurse now, a
  callback in its window, or a digital path), its priority from the urgency and the ruleset
  version in its note. A ServiceRequest rather than a Task: the decision *asks for* a service
  (a nurse contact) that the record system schedules and tracks with its own workflow; a Task
  would claim we manage that workflow.

Every resource carries an identifier derived from the case id, and every entry is a
conditional create on it (``ifNoneExist``): the same case posted twice creates nothing new.
The ServiceRequest alone is a conditional update (``PUT ServiceRequest?identifier=…``): when a
nurse changes the decision afterwards, the case is sent again and the request in the record
becomes hers, still one resource.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, uuid5

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.composition import Composition
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from integrations.fhir.schemas import CaseRecord

HETU_SYSTEM = "urn:oid:1.2.246.21"
"""The Finnish personal identity code (HL7 Finland)."""
ICPC2_SYSTEM = "http://hl7.org/fhir/sid/icpc-2"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DEFAULT_CASE_SYSTEM = "urn:esitieto:case"
"""Identifiers of what one case creates (set your own: ``ESITIETO_FHIR__IDENTIFIER_SYSTEM``)."""
STATION_SYSTEM = "urn:esitieto:station"

R = TypeVar("R", bound=Resource)

PRIORITY = {"emergency": "stat", "urgent": "asap", "non_urgent": "routine"}
REQUEST = {
    "nurse_queue": "Hoitajan yhteydenotto heti / Nurse contact now",
    "callback": "Hoitajan takaisinsoitto / Nurse callback",
    "digital_path": "Digipolku / Digital path",
}
SEX = {"female": "female", "male": "male"}


class FhirBuildError(ValueError):
    """The case could not be made into valid FHIR (names the resource and the field)."""


def build_bundle(case: CaseRecord, *, case_system: str = DEFAULT_CASE_SYSTEM) -> dict[str, Any]:
    """The case as a FHIR transaction Bundle (JSON-ready dict), validated."""
    try:
        return _build(case, case_system).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FhirBuildError(
            f"case {case.case_id}: invalid FHIR at {where}: {first['msg']}"
        ) from exc


def _build(case: CaseRecord, system: str) -> Bundle:
    def ident(kind: str) -> dict[str, str]:
        return {"system": system, "value": f"{case.case_id}/{kind}"}

    def url(kind: str) -> str:
        return f"urn:uuid:{uuid5(NAMESPACE_URL, f'{system}|{case.case_id}/{kind}')}"

    entries: list[dict[str, Any]] = []

    def add(
        kind: str, resource: Resource, search: str | None = None, *, update: bool = False
    ) -> dict[str, str]:
        identifier = search or f"{system}|{case.case_id}/{kind}"
        resource_type = resource.get_resource_type()
        request = (
            {"method": "PUT", "url": f"{resource_type}?identifier={identifier}"}
            if update
            else {"method": "POST", "url": resource_type, "ifNoneExist": f"identifier={identifier}"}
        )
        entries.append({"fullUrl": url(kind), "resource": resource, "request": request})
        return {"reference": url(kind)}

    organization = add(
        "organization",
        _make(
            Organization,
            identifier=[{"system": STATION_SYSTEM, "value": case.station_id}],
            name=case.station_name,
            active=True,
        ),
        search=f"{STATION_SYSTEM}|{case.station_id}",
    )
    if case.identity_code:
        patient_ids = [{"system": HETU_SYSTEM, "value": case.identity_code}]
        patient_search = f"{HETU_SYSTEM}|{case.identity_code}"
    else:
        patient_ids = [ident("patient")]
        patient_search = None
    patient = add(
        "patient",
        _make(
            Patient,
            identifier=patient_ids,
            birthDate=case.birth_date,
            gender=SEX.get(case.sex or "", "unknown") if case.sex else None,
        ),
        search=patient_search,
    )
    encounter = add(
        "encounter",
        _make(
            Encounter,
            identifier=[ident("encounter")],
            status="finished",
            class_fhir={"system": ACT_CODE, "code": "VR", "display": "virtual"},
            type=[{"text": "Puhelinkontakti / Telephone contact"}],
            subject=patient,
            serviceProvider=organization,
            period={"start": _aware(case.started_at), "end": _aware(case.ended_at)},
            reasonCode=[{"text": case.reason[:300]}] if case.reason else None,
        ),
    )
    conditions = []
    for i, s in enumerate(case.symptoms):
        conditions.append(
            add(
                f"condition/{i}",
                _make(
                    Condition,
                    identifier=[ident(f"condition/{i}")],
                    clinicalStatus={
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    verificationStatus={
                        "coding": [{"system": CONDITION_VERIFICATION, "code": "unconfirmed"}]
                    },
                    category=[
                        {"coding": [{"system": CONDITION_CATEGORY, "code": "encounter-diagnosis"}]}
                    ],
                    code={
                        "coding": [{"system": ICPC2_SYSTEM, "code": s.icpc2, "display": s.label}],
                        "text": s.label,
                    },
                    subject=patient,
                    encounter=encounter,
                    recordedDate=_aware(case.started_at),
                    note=[{"text": f'"{s.words}"'}] if s.words else None,
                ),
            )
        )
    if case.temperature_c is not None:
        add(
            "temperature",
            _make(
                Observation,
                identifier=[ident("temperature")],
                status="final",
                category=[{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
                code={
                    "coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"}]
                },
                subject=patient,
                encounter=encounter,
                effectiveDateTime=_aware(case.started_at),
                valueQuantity={
                    "value": case.temperature_c,
                    "unit": "Cel",
                    "system": UCUM,
                    "code": "Cel",
                },
                note=[{"text": "Soittajan ilmoittama / reported by the caller"}],
            ),
        )
    add(
        "note",
        _make(
            Composition,
            identifier=ident("note"),
            status="final",
            type={"coding": [{"system": LOINC, "code": "34746-8", "display": "Nurse Note"}]},
            subject=patient,
            encounter=encounter,
            date=_aware(case.ended_at or case.started_at),
            author=[organization],
            title="Esitieto",
            section=[
                {
                    "title": "Esitiedot",
                    "text": {"status": "generated", "div": _div(case.note)},
                }
            ],
        ),
    )
    decision = (
        f"Esitieto pretriage ({case.decided_by}, ruleset {case.ruleset_version}): "
        f"{case.urgency}, {case.route}"
        + (f", {case.digital_path}" if case.digital_path else "")
        + (", uncertain" if case.uncertain else "")
    )
    window = (
        {"start": _aware(case.callback_start), "end": _aware(case.callback_end)}
        if case.route == "callback" and case.callback_start
        else None
    )
    add(
        "request",
        _make(
            ServiceRequest,
            identifier=[ident("request")],
            status="active",
            intent="order",
            priority=PRIORITY.get(case.urgency, "asap"),
            code={"text": REQUEST.get(case.route, case.route)},
            subject=patient,
            encounter=encounter,
            occurrencePeriod=window,
            authoredOn=_aware(case.ended_at or case.started_at),
            requester=organization,
            reasonReference=conditions or None,
            note=[{"text": decision}] + [{"text": r} for r in case.reasons],
        ),
        update=True,  # a nurse's later change of the decision replaces it
    )
    return Bundle.model_validate({"type": "transaction", "entry": entries})


def _make(model: type[R], **fields: Any) -> R:
    """The resource, validated (fields as FHIR JSON: references and codings as dicts)."""
    return model.model_validate(fields)


def _aware(moment: datetime | None) -> datetime | None:
    """FHIR's dateTime with a time needs a zone; the database keeps UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _div(text: str) -> str:
    lines = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line.strip())
    return f'<div xmlns="http://www.w3.org/1999/xhtml">{lines or "<p>-</p>"}</div>'
