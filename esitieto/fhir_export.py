"""``esitieto export-fhir``: finished cases since a date as FHIR R4 Bundles, posted to the
county's server or written as NDJSON (one Bundle per line) for a batch load."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select

from esitieto.db import Database
from integrations.fhir.bundle import FhirBuildError, build_bundle
from integrations.fhir.client import FhirClient, FhirError, FhirSettings
from models import AuditEvent, Call, CallState, utcnow
from voicebot.export import NotExportable, case_record


@dataclass
class ExportReport:
    cases: int = 0
    written: int = 0
    posted: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    """Case ids whose export failed (the reason is on the case: ``fhir_error``)."""


def export_since(
    db: Database,
    settings: FhirSettings,
    identity_key: bytes,
    since: date,
    *,
    out: Path | None = None,
    client: FhirClient | None = None,
) -> ExportReport:
    """Every finished case that ended on or after ``since`` (UTC): to ``out`` as NDJSON, or
    posted with ``client`` (conditional creates: cases already there are left as they are)."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    report = ExportReport()
    with db.session() as session:
        ids = list(
            session.scalars(
                select(Call.id)
                .where(Call.state.in_((CallState.READY, CallState.FAILED)))
                .where(Call.ended_at >= start, Call.anonymised_at.is_(None))
                .order_by(Call.ended_at)
            )
        )
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) if out else None
    try:
        for call_id in ids:
            report.cases += 1
            with db.session() as session:
                call = session.get(Call, call_id)
                try:
                    assert call is not None
                    bundle = build_bundle(
                        case_record(session, call, identity_key),
                        case_system=settings.identifier_system,
                    )
                except (AssertionError, NotExportable, FhirBuildError):
                    report.skipped += 1
                    continue
            if fd is not None:
                os.write(fd, (json.dumps(bundle, ensure_ascii=False) + "\n").encode("utf-8"))
                report.written += 1
                continue
            assert client is not None
            try:
                client.post_bundle(bundle)
            except FhirError as exc:
                report.failed.append(call_id)
                _mark(db, call_id, error=str(exc))
                continue
            report.posted += 1
            _mark(db, call_id, error=None)
    finally:
        if fd is not None:
            os.close(fd)
    with db.session() as session:
        session.add(
            AuditEvent(
                action="export_fhir_batch",
                object_type="call",
                detail={
                    "since": since.isoformat(),
                    "cases": report.cases,
                    "to_file": out is not None,
                },
            )
        )
    return report


def _mark(db: Database, call_id: str, *, error: str | None) -> None:
    with db.session() as session:
        call = session.get(Call, call_id)
        if call is not None:
            call.fhir_error = error[:300] if error else None
            if error is None:
                call.fhir_exported_at = utcnow()
