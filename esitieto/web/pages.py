"""The nurse's pages: login, the worklist, the case, and the recording audio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from esitieto.runtime import Runtime, get_runtime
from esitieto.stats import compute
from esitieto.web.auth import (
    LoginRequired,
    StaffUser,
    authenticate,
    check_csrf,
    csrf_token,
    load_staff_user,
)
from esitieto.web.i18n import messages
from models import (
    AuditEvent,
    Call,
    Callback,
    Recording,
    Station,
    Summary,
    SummaryFeedback,
    TriageDecision,
    utcnow,
)
from pretriage.ruleset import default_ruleset
from pretriage.service import Override, override_triage

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

WORKLIST_LIMIT = 200
DISPLAY_TZ = ZoneInfo("Europe/Helsinki")

Rt = Annotated[Runtime, Depends(get_runtime)]


def current_user(request: Request, runtime: Rt) -> StaffUser:
    user_id = request.session.get("uid")
    if not user_id:
        raise LoginRequired
    with runtime.db.session() as session:
        user = load_staff_user(session, str(user_id))
    if user is None:
        request.session.clear()
        raise LoginRequired
    return user


User = Annotated[StaffUser, Depends(current_user)]


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    context = {"t": messages(), "csrf": csrf_token(request), "tz": DISPLAY_TZ, **context}
    return templates.TemplateResponse(request, name, context, status_code=status)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return _render(request, "login.html", {"error": None})


@router.post("/login")
def login(
    request: Request,
    runtime: Rt,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    check_csrf(request, csrf)
    with runtime.db.session() as session:
        user = authenticate(session, username, password)
        session.add(
            AuditEvent(
                user_id=user.id if user else None,
                action="login" if user else "login_failed",
                object_type="user",
                object_id=user.id if user else None,
            )
        )
        user_id = user.id if user else None
    if user_id is None:
        return _render(request, "login.html", {"error": messages().login_failed}, status=401)
    request.session.clear()  # a new session on login: no fixation
    request.session["uid"] = user_id
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str | None, Form()] = None) -> Response:
    check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


WORKLIST_STATES = ("active", "ready", "ended", "failed", "in_progress", "all")
WINDOW_WARNING = timedelta(minutes=30)
"""A callback whose promised window ends within this is flagged, so it is not missed."""


@router.get("/", response_class=HTMLResponse)
def worklist(
    request: Request,
    runtime: Rt,
    user: User,
    state: str = "active",
    route: str = "all",
) -> Response:
    """The user's stations' cases, most urgent first, then longest waiting first; filtered by
    state (``active``: not yet handled) and route. The page refreshes itself when a case
    changes (``/worklist/events``)."""
    state = state if state in WORKLIST_STATES else "active"
    route = route if route in ("all", "nurse_queue", "callback", "digital_path") else "all"
    query = (
        select(Call, Callback, Summary.data)
        .outerjoin(Callback, Callback.call_id == Call.id)
        .outerjoin(Summary, Summary.call_id == Call.id)
        .where(Call.station_id.in_(user.station_ids))
    )
    if state == "active":
        query = query.where(or_(Callback.id.is_(None), Callback.state == "open"))
    elif state != "all":
        query = query.where(Call.state == state)
    if route != "all":
        query = query.where(Call.route == route)
    now = utcnow()
    with runtime.db.session() as session:
        rows = session.execute(
            query.order_by(Call.urgency_rank.desc(), Call.started_at.asc()).limit(WORKLIST_LIMIT)
        ).all()
        cases = [
            {
                "call": call,
                "callback": cb,
                "age": (data or {}).get("age"),
                "window": _window_sign(cb, now),
            }
            for call, cb, data in rows
        ]
        return _render(
            request,
            "worklist.html",
            {"user": user, "cases": cases, "state": state, "route": route,
             "states": WORKLIST_STATES},
        )  # fmt: skip


def _window_sign(cb: Callback | None, now: datetime) -> str | None:
    """``missed`` or ``soon`` for an open callback about to miss its promised window."""
    if cb is None or cb.state != "open" or cb.window_end is None:
        return None
    if cb.window_end < now:
        return "missed"
    return "soon" if cb.window_end - now <= WINDOW_WARNING else None


@router.get("/worklist/events")
async def worklist_events(
    request: Request, runtime: Rt, user: User, max_s: float = 55.0
) -> Response:
    """Server-sent events: ``changed`` whenever a case at the user's stations changes. The
    stream ends after ``max_s`` (the browser's EventSource reconnects by itself)."""

    async def stream() -> AsyncIterator[str]:
        last: str | None = None
        deadline = asyncio.get_running_loop().time() + min(max_s, 300.0)
        yield "retry: 2000\n\n"
        while asyncio.get_running_loop().time() < deadline:
            if await request.is_disconnected():
                return
            version = await asyncio.to_thread(_worklist_version, runtime, user)
            if version != last:
                yield f"event: changed\ndata: {version}\n\n"
                last = version
            await asyncio.sleep(1.0)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _worklist_version(runtime: Runtime, user: StaffUser) -> str:
    with runtime.db.session() as session:
        latest, count = session.execute(
            select(func.max(Call.updated_at), func.count(Call.id)).where(
                Call.station_id.in_(user.station_ids)
            )
        ).one()
        cb_latest = session.scalar(
            select(func.max(Callback.updated_at)).where(Callback.station_id.in_(user.station_ids))
        )
    stamps = [t.isoformat() if t else "" for t in (latest, cb_latest)]
    return f"{count}-{stamps[0]}-{stamps[1]}"


PERIODS = {"day": 1, "week": 7, "month": 30}


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request,
    runtime: Rt,
    user: User,
    station: str | None = None,
    period: str = "week",
    to: str | None = None,
) -> Response:
    """The pilot's adoption figures for a station and period, as charts (server-rendered SVG:
    nothing to download, fast on a slow PC), with the same figures as CSV."""
    days = PERIODS.get(period, 7)
    stations = sorted(user.station_ids)
    chosen = station if station in user.station_ids else (stations[0] if stations else None)
    try:  # the period ends with the day ``to`` (default: today)
        last = datetime.fromisoformat(to).replace(tzinfo=UTC) if to else utcnow()
    except ValueError:
        last = utcnow()
    until = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    since = until - timedelta(days=days)
    with runtime.db.session() as session:
        figures = compute(session, [chosen] if chosen else [], since, until)
        names = dict(
            session.execute(select(Station.id, Station.name).where(Station.id.in_(stations))).all()
        )
    return _render(
        request,
        "dashboard.html",
        {
            "user": user,
            "f": figures,
            "station": chosen,
            "stations": [(sid, names.get(sid, sid)) for sid in stations],
            "period": period if period in PERIODS else "week",
            "periods": list(PERIODS),
            "csv_url": (
                f"/api/v1/stats?station={chosen}&from={since.date().isoformat()}"
                f"&to={until.date().isoformat()}&format=csv"
            ),
            "bars": _bars,
        },
    )


def _bars(counts: dict[str, int], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Bar rows for a horizontal SVG bar chart: label, value, width in percent."""
    top = max(counts.values(), default=0) or 1
    return [
        {"label": labels.get(k, k), "value": v, "width": round(100 * v / top, 1)}
        for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
    ]


@router.get("/cases/{call_id}", response_class=HTMLResponse)
def case_page(call_id: str, request: Request, runtime: Rt, user: User, saved: int = 0) -> Response:
    with runtime.db.session() as session:
        call = _visible_call(session, call_id, user)
        context = _case_context(session, call, user)
        _audit_case(session, user, call, "view_case")
        return _render(
            request,
            "case.html",
            {**context, "notice": messages().override_saved if saved else None},
        )


@router.post("/cases/{call_id}/override")
def override_case(
    call_id: str,
    request: Request,
    runtime: Rt,
    user: User,
    urgency: Annotated[str, Form()] = "",
    route: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    digital_path: Annotated[str, Form()] = "",
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    """A nurse's own urgency and route, with why; pretriage's decision stays beside it."""
    check_csrf(request, csrf)
    form = {"urgency": urgency, "route": route, "reason": reason, "digital_path": digital_path}
    with runtime.db.session() as session:
        call = _visible_call(session, call_id, user)
        try:
            change = Override.model_validate({**form, "digital_path": digital_path or None})
            override_triage(session, call, user.id, change)
        except (ValidationError, ValueError) as exc:
            session.rollback()
            call = _visible_call(session, call_id, user)
            return _render(
                request,
                "case.html",
                {**_case_context(session, call, user), "error": _override_error(exc), "form": form},
                status=422,
            )
    return RedirectResponse(f"/cases/{call_id}?saved=1", status_code=303)


CALLBACK_OUTCOMES = ("reached", "no_answer", "other")
SUMMARY_USES = ("as_is", "edited", "not_used")


@router.post("/cases/{call_id}/callback-done")
def callback_done(
    call_id: str,
    request: Request,
    runtime: Rt,
    user: User,
    outcome: Annotated[str, Form()] = "reached",
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    """The nurse has called back: the callback leaves the worklist, with its outcome."""
    check_csrf(request, csrf)
    if outcome not in CALLBACK_OUTCOMES:
        raise HTTPException(status_code=400, detail="unknown outcome")
    with runtime.db.session() as session:
        call = _visible_call(session, call_id, user)
        cb = session.scalar(select(Callback).where(Callback.call_id == call.id))
        if cb is None:
            raise HTTPException(status_code=404, detail="no callback for this case")
        if cb.state != "done":  # a double click changes nothing
            cb.state, cb.outcome = "done", outcome
            cb.completed_at, cb.completed_by = utcnow(), user.id
            _audit_case(session, user, call, "callback_done", {"outcome": outcome})
    return RedirectResponse(f"/cases/{call_id}?saved=1", status_code=303)


@router.post("/cases/{call_id}/summary-feedback")
def summary_feedback(
    call_id: str,
    request: Request,
    runtime: Rt,
    user: User,
    usage: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    """Whether the nurse used the summary as is, edited it, or did not use it (and why)."""
    check_csrf(request, csrf)
    if usage not in SUMMARY_USES:
        raise HTTPException(status_code=400, detail="say how the summary was used")
    with runtime.db.session() as session:
        call = _visible_call(session, call_id, user)
        session.add(
            SummaryFeedback(call_id=call.id, user_id=user.id, usage=usage,
                            comment=comment.strip()[:1000] or None)
        )  # fmt: skip
        _audit_case(session, user, call, "summary_feedback", {"usage": usage})
    return RedirectResponse(f"/cases/{call_id}?saved=1", status_code=303)


def _override_error(exc: Exception) -> str:
    """The nurse's words for what is wrong with the override form."""
    t = messages()
    text = str(exc)
    for needle, message in (
        ("urgent case cannot go to a digital path", t.override_digital_urgent),
        ("name the digital path", t.override_need_path),
        ("unknown digital path", t.override_need_path),
        ("only goes with the digital_path route", t.override_path_only_digital),
        ("reason", t.override_need_reason),
        ("say why", t.override_need_reason),
    ):
        if needle in text:
            return str(message)
    return str(t.override_invalid)


@dataclass(frozen=True)
class EvidencePiece:
    """A piece of the transcript, marked when a fact rests on it."""

    text: str
    mark: int | None = None
    label: str = ""


def evidence_facts(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's facts with the transcript span each rests on (for links to it)."""
    facts: list[dict[str, Any]] = []
    for key, kind in (("symptoms", "symptom"), ("negated_symptoms", "denied"),
                      ("findings", "finding")):  # fmt: skip
        for item in data.get(key) or []:
            ev = item.get("evidence") or {}
            facts.append({"kind": kind, "label": item.get("label", ""), **ev})
    for key in ("medication_facts", "condition_facts", "allergy_facts"):
        for item in data.get(key) or []:
            ev = item.get("evidence") or {}
            facts.append({"kind": key.split("_")[0], "label": item.get("name", ""), **ev})
    for name, ev in (data.get("evidence") or {}).items():
        facts.append({"kind": name, "label": name, **ev})
    return [f for f in facts if isinstance(f.get("start"), int) and isinstance(f.get("end"), int)]


def highlight(text: str, facts: list[dict[str, Any]]) -> list[EvidencePiece]:
    """``text`` cut into pieces, each fact's span marked with the fact's index (overlapping
    spans: the first one wins)."""
    spans = sorted(
        ((f["start"], f["end"], i, f["label"]) for i, f in enumerate(facts)),
        key=lambda s: (s[0], -s[1]),
    )
    pieces: list[EvidencePiece] = []
    pos = 0
    for start, end, index, label in spans:
        if start < pos or end > len(text) or start >= end:
            continue
        if start > pos:
            pieces.append(EvidencePiece(text[pos:start]))
        pieces.append(EvidencePiece(text[start:end], index, label))
        pos = end
    if pos < len(text):
        pieces.append(EvidencePiece(text[pos:]))
    return pieces


def _case_context(session: Session, call: Call, user: StaffUser) -> dict[str, Any]:
    station = session.get(Station, call.station_id)
    summary = session.scalar(select(Summary).where(Summary.call_id == call.id))
    decisions = session.scalars(
        select(TriageDecision)
        .where(TriageDecision.call_id == call.id)
        .order_by(TriageDecision.created_at)
    ).all()
    callback = session.scalar(select(Callback).where(Callback.call_id == call.id))
    recordings: list[dict[str, Any]] = [
        {"rec": r, "transcript": r.transcript, "segments": list(r.transcript.segments)}
        if r.transcript
        else {"rec": r, "transcript": None, "segments": []}
        for r in call.recordings
    ]
    facts = evidence_facts(summary.data or {}) if summary is not None else []
    return {
        "user": user,
        "call": call,
        "station": station,
        "summary": summary,
        "facts": facts,
        "pieces": highlight(summary.source_text, facts) if summary is not None else [],
        "decisions": decisions,
        "callback": callback,
        "recordings": recordings,
        "digital_paths": list(default_ruleset().digital_paths),
        "error": None,
        "form": {"urgency": call.urgency, "route": call.route, "reason": "", "digital_path": ""},
    }


@router.get("/cases/{call_id}/recordings/{recording_id}")
def recording_audio(call_id: str, recording_id: str, runtime: Rt, user: User) -> Response:
    with runtime.db.session() as session:
        call = _visible_call(session, call_id, user)
        rec = session.get(Recording, recording_id)
        if rec is None or rec.call_id != call.id or not rec.storage_key:
            raise HTTPException(status_code=404, detail="no recording")
        session.add(
            AuditEvent(
                user_id=user.id,
                action="play_recording",
                object_type="recording",
                object_id=rec.id,
                station_id=call.station_id,
            )
        )
        key, content_type = rec.storage_key, rec.content_type or "audio/wav"
    path = runtime.storage.local_path(key)
    if not path.is_file():
        raise HTTPException(status_code=404, detail="no recording")
    return FileResponse(path, media_type=content_type, headers={"Cache-Control": "private"})


def _audit_case(
    session: Session,
    user: StaffUser,
    call: Call,
    action: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """What a staff member did to a case (never the health text itself)."""
    session.add(
        AuditEvent(
            user_id=user.id,
            action=action,
            object_type="call",
            object_id=call.id,
            station_id=call.station_id,
            detail=detail or {},
        )
    )


def _visible_call(session: Session, call_id: str, user: StaffUser) -> Call:
    call = session.get(Call, call_id)
    # Another station's case is answered exactly like a missing one.
    if call is None or call.station_id not in user.station_ids:
        raise HTTPException(status_code=404, detail="no such case")
    return call
