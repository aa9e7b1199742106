"""``esitieto export-fhir``: a batch of finished cases as NDJSON, or posted once each."""

from __future__ import annotations

import json
import stat
from datetime import date
from pathlib import Path

import pytest
from fhirclient.models.bundle import Bundle as R4Bundle

from esitieto.cli import main
from esitieto.fhir_export import export_since
from esitieto.runtime import Runtime
from tests.conftest import SYSTEM, drain, finished_call
from tests.integrations.fhir_server import FhirServer


def test_cases_since_a_date_go_to_a_private_ndjson_file(exporting: Runtime, tmp_path: Path) -> None:
    calls = [finished_call(exporting) for _ in range(2)]
    drain(exporting)
    out = tmp_path / "cases.ndjson"
    s = exporting.settings
    report = export_since(exporting.db, s.fhir, s.identity_key, date(2000, 1, 1), out=out)
    assert (report.cases, report.written, report.failed) == (2, 2, [])
    lines = out.read_text("utf-8").splitlines()
    assert len(lines) == 2
    for line in lines:
        R4Bundle(json.loads(line), strict=True)
    ids = {
        e["resource"]["identifier"][0]["value"]
        for line in lines
        for e in json.loads(line)["entry"]
        if e["resource"]["resourceType"] == "Encounter"
    }
    assert ids == {f"{c}/encounter" for c in calls}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # health data: the service's own
    later = export_since(exporting.db, s.fhir, s.identity_key, date(2999, 1, 1), out=out)
    assert later.cases == 0


def test_a_batch_posted_twice_creates_each_case_once(
    exporting: Runtime, fhir_server: tuple[FhirServer, str]
) -> None:
    server, _ = fhir_server
    call_id = finished_call(exporting)
    drain(exporting)  # the export job has posted it already
    s = exporting.settings
    assert exporting.fhir is not None
    report = export_since(
        exporting.db, s.fhir, s.identity_key, date(2000, 1, 1), client=exporting.fhir
    )
    assert (report.posted, report.failed) == (1, [])
    assert len(server.find("Encounter", SYSTEM, f"{call_id}/encounter")) == 1


def test_the_command_refuses_a_bad_date_and_a_missing_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ESITIETO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ESITIETO_FHIR__BASE_URL", raising=False)
    assert main(["export-fhir", "--since", "last week"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert main(["export-fhir", "--since", "2026-01-01"]) == 2
    assert "ESITIETO_FHIR__BASE_URL" in capsys.readouterr().err
