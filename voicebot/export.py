"""A finished case as the record the FHIR export sends (``integrations/fhir``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from integrations.fhir.schemas import CaseRecord, ReportedSymptom
from models import Call, Callback, CallState, Station, Summary, TriageDecision
from voicebot.service import open_identity


class NotExportable(Exception):
    """The case is not finished, or retention has emptied it."""


def case_record(session: Session, call: Call, identity_key: bytes) -> CaseRecord:
    """What the county's record should hold of the case; the identity code is opened only
    here, for the export."""
    if call.state not in (CallState.READY, CallState.FAILED) or call.anonymised_at:
        raise NotExportable("the case is not finished" if not call.anonymised_at else "anonymised")
    station = session.get(Station, call.station_id)
    summary = session.scalar(select(Summary).where(Summary.call_id == call.id))
    decision = session.scalar(
        select(TriageDecision)
        .where(TriageDecision.call_id == call.id)
        .order_by(TriageDecision.created_at.desc(), TriageDecision.id.desc())
        .limit(1)
    )
    if station is None or summary is None or decision is None:
        raise NotExportable("the case has no summary or decision yet")
    callback = session.scalar(select(Callback).where(Callback.call_id == call.id))
    data = summary.data or {}
    code, birth, sex = open_identity(identity_key, call) or (None, None, None)
    return CaseRecord(
        case_id=call.id,
        station_id=station.id,
        station_name=station.name,
        started_at=call.started_at,
        ended_at=call.ended_at,
        language=call.language,
        for_whom=str(data.get("for_whom") or "self"),
        reason=summary.reason,
        note=summary.note,
        urgency=decision.urgency,
        route=decision.route,
        digital_path=decision.digital_path,
        uncertain=decision.uncertain,
        ruleset_version=decision.ruleset_version,
        decided_by=decision.source,
        reasons=tuple(str(r.get("text", "")) for r in decision.reasons if r.get("text")),
        symptoms=tuple(
            ReportedSymptom(
                icpc2=str(s["icpc2"]),
                label=str(s.get("label") or s["icpc2"]),
                words=str((s.get("evidence") or {}).get("text", "")),
            )
            for s in data.get("symptoms", [])
            if s.get("icpc2")
        ),
        temperature_c=data.get("temperature_c"),
        identity_code=code,
        birth_date=birth,
        sex=sex,
        callback_start=callback.window_start if callback else None,
        callback_end=callback.window_end if callback else None,
    )
