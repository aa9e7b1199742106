"""The JSON API: analysis of a text, and health."""

from __future__ import annotations

import csv
import hmac
import io
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy import func, select, text

from esitieto.analysis_pool import AnalysisUnavailable
from esitieto.runtime import Runtime, get_runtime
from esitieto.stats import compute, local_days, local_today
from esitieto.web.auth import NEXT_KEY, LoginRequired, Permission, StaffUser, current_user, require
from models import AuditEvent, Call, Job, JobState, Station
from pretriage.analysis import AnalysisResult
from summarizer.text.schemas import CallContext
from voicebot.openapi import refusal

router = APIRouter()
Rt = Annotated[Runtime, Depends(get_runtime)]


def _valid_unicode(value: object) -> object:
    """JSON may carry a lone surrogate ("\\ud800"), which no UTF-8 answer, log or database can
    hold: it is read as the replacement character, like any other unreadable letter."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


class AnalyzeRequest(BaseModel):
    id: Annotated[str | None, BeforeValidator(_valid_unicode)] = None
    text: Annotated[str, BeforeValidator(_valid_unicode)] = Field(max_length=20000)
    context: CallContext = Field(default_factory=CallContext)
    note_language: Literal["fi", "sv", "en"] = "fi"


def api_caller(request: Request, runtime: Rt) -> str:
    """Who may analyse text: signed-in staff, or a machine with the configured bearer token.
    Health text is analysed for nobody else (the matcher's cost is also nobody else's to
    spend)."""
    token = runtime.settings.web.api_token
    given = request.headers.get("Authorization", "")
    if token is not None and given.startswith("Bearer "):
        if hmac.compare_digest(given[7:].encode(), token.get_secret_value().encode()):
            return "api-token"
        raise HTTPException(status_code=401, detail="wrong API token")
    return current_user(request, runtime).id  # LoginRequired: 401 on /api/


@router.post(
    "/api/v1/analyze",
    response_model=AnalysisResult,
    responses={
        400: refusal("A body that is not JSON in UTF-8."),
        401: refusal("Neither a staff sign-in nor the API token, or a wrong token."),
        413: refusal("A body over `web.max_body_bytes`, refused before it is read."),
        503: refusal("The analysis passed `web.analyze_deadline_s` and was stopped."),
    },
)
def analyze(
    body: AnalyzeRequest, runtime: Rt, caller: Annotated[str, Depends(api_caller)]
) -> AnalysisResult:
    """The same as one ``esitieto analyze --jsonl`` line: both detectors, as after a call.
    It runs in a separate process with a deadline (``esitieto/analysis_pool.py``)."""
    pool = runtime.analysis_pool
    if pool is None:
        return runtime.analyzer(body.id, body.text, body.context, note_language=body.note_language)
    try:
        return pool.analyze(body.id, body.text, body.context, note_language=body.note_language)
    except AnalysisUnavailable:
        raise HTTPException(
            status_code=503,
            detail="the analysis took too long and was stopped; try a shorter text",
            headers={"Retry-After": "5"},
        ) from None


@router.get(
    "/api/v1/stats",
    responses={
        200: {
            "description": "The figures, as JSON or (`format=csv`) as CSV.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        400: refusal("`from` or `to` not a date, or `from` after `to`."),
        401: refusal("Not signed in."),
        403: refusal("A role without the dashboard (a nurse)."),
        404: refusal("A station that is not the user's."),
    },
)
def stats(
    runtime: Rt,
    user: Annotated[StaffUser, Depends(require(Permission.DASHBOARD))],
    station: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """The pilot's adoption figures for the user's station(s) and period: ``from`` and ``to``
    are ISO dates of the stations' local days, ``to`` exclusive (default: the last 7 days).
    Station lead or administrator sign-in required."""
    try:
        last = date.fromisoformat(to) - timedelta(days=1) if to else local_today()
        first = date.fromisoformat(from_) if from_ else last - timedelta(days=6)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail="from/to must be dates: YYYY-MM-DD") from exc
    if first > last:
        raise HTTPException(status_code=400, detail="'from' must be before 'to'")
    since, until = local_days(first, last)
    if station is not None and station not in user.station_ids:
        raise HTTPException(status_code=404, detail="no such station")
    stations = [station] if station else list(user.station_ids)
    with runtime.db.session() as session:
        figures = compute(session, stations, since, until)
    if format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["figure", "value"])
        writer.writerows(figures.csv_rows())
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="esitieto-stats.csv"'},
        )
    return JSONResponse(figures.as_dict())


@router.get(
    "/api/v1/region",
    responses={
        200: {
            "description": "One row per station, as JSON or (`format=csv`) as CSV.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        400: refusal("`from` or `to` not a date, `from` after `to`, or an unknown `sort`."),
        401: refusal("Not signed in."),
        403: refusal("A role without the region's view."),
    },
)
def region(
    runtime: Rt,
    user: Annotated[StaffUser, Depends(require(Permission.REGION))],
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    sort: str = "name",
    order: Literal["asc", "desc"] = "asc",
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Every station's adoption figures side by side for a period of local days (``to``
    exclusive; default the last 30 days), sortable by any measure. Region role required."""
    from esitieto.region import MEASURES, region_figures, sort_rows

    if sort != "name" and sort not in MEASURES:
        raise HTTPException(status_code=400, detail=f"sort by name or one of {', '.join(MEASURES)}")
    try:
        last = date.fromisoformat(to) - timedelta(days=1) if to else local_today()
        first = date.fromisoformat(from_) if from_ else last - timedelta(days=29)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail="from/to must be dates: YYYY-MM-DD") from exc
    if first > last:
        raise HTTPException(status_code=400, detail="'from' must be before 'to'")
    since, until = local_days(first, last)
    with runtime.db.session() as session:
        stations = list(session.scalars(select(Station).order_by(Station.name)))
        rows = sort_rows(region_figures(session, stations, since, until), sort, order == "desc")
    if format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["station", "name", *MEASURES])
        for r in rows:
            writer.writerow(
                [
                    r.station_id,
                    r.name,
                    *("" if r.values[m] is None else r.values[m] for m in MEASURES),
                ]
            )
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="esitieto-region.csv"'},
        )
    return JSONResponse(
        {
            "from": first.isoformat(),
            "to": (last + timedelta(days=1)).isoformat(),
            "measures": list(MEASURES),
            "stations": [{"station": r.station_id, "name": r.name, **r.values} for r in rows],
        }
    )


@router.get(
    "/api/v1/cases/{call_id}/fhir",
    responses={
        200: {
            "description": "The case as a FHIR R4 transaction Bundle.",
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        },
        401: refusal("Not signed in."),
        404: refusal("No such case, or another station's."),
        409: refusal("The case is not finished yet, or retention has emptied it."),
    },
)
def case_fhir(
    call_id: str,
    runtime: Rt,
    user: Annotated[StaffUser, Depends(require(Permission.CASES))],
) -> Response:
    """The case as it goes (or went) to the county's record system: the same Bundle the
    export posts, with the keyed identity code. Every request is audited."""
    from integrations.fhir.bundle import FhirBuildError, build_bundle
    from voicebot.export import NotExportable, case_record

    with runtime.db.session() as session:
        call = session.get(Call, call_id)
        if call is None or call.station_id not in user.station_ids:
            raise HTTPException(status_code=404, detail="no such case")
        try:
            record = case_record(session, call, runtime.settings.identity_key)
            bundle = build_bundle(record, case_system=runtime.settings.fhir.identifier_system)
        except (NotExportable, FhirBuildError) as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        session.add(
            AuditEvent(
                user_id=user.id,
                action="view_case_fhir",
                object_type="call",
                object_id=call.id,
                station_id=call.station_id,
                detail={},
            )
        )
    return JSONResponse(bundle, media_type="application/fhir+json")


@router.get(
    "/healthz",
    responses={
        200: {"description": "Up; the details only for signed-in staff."},
        503: {
            "description": "The database or the worker is down.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
def healthz(request: Request, runtime: Rt) -> JSONResponse:
    """Liveness and readiness: database, job queue backlog, speech model loaded. A load
    balancer gets the status alone; the details are for signed-in staff."""
    checks: dict[str, object] = {}
    ok = True
    try:
        with runtime.db.session() as session:
            session.execute(text("SELECT 1"))
            checks["queued_jobs"] = session.scalar(
                select(func.count()).select_from(Job).where(Job.state == JobState.QUEUED)
            )
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        ok = False
    alive = runtime.worker_alive
    checks["worker"] = (
        "external"
        if runtime.settings.worker.mode == "external"
        else ("ok" if alive is not None and alive() else "stopped")
    )
    if checks["worker"] == "stopped":
        ok = False
    from summarizer.speech.stt import engine_loaded

    checks["asr_model_loaded"] = engine_loaded()
    status = {"status": "ok" if ok else "error"}
    try:
        current_user(request, runtime)
    except LoginRequired:
        request.session.pop(NEXT_KEY, None)  # a probe is not a page to come back to
        return JSONResponse(status, status_code=200 if ok else 503)
    return JSONResponse({**status, **checks}, status_code=200 if ok else 503)
