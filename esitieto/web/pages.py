"""The nurse's pages: login, the worklist, the case, and the recording audio."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from functools import partial
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
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from esitieto.runtime import Runtime, get_runtime
from esitieto.stats import LOCAL_TZ, Stats, compute, local_days
from esitieto.web.auth import (
    NEXT_KEY,
    SIGN_OUT_AT_PROVIDER_KEY,
    Permission,
    StaffUser,
    authenticate,
    check_csrf,
    claim_attempt,
    csrf_token,
    end_session,
    forget_attempts,
    require,
    safe_next,
    start_session,
)
from esitieto.web.i18n import DEFAULT, LANGUAGES, Messages, messages, number, percent, time_span
from integrations.jobs import enqueue
from models import (
    AuditEvent,
    Call,
    Callback,
    JobKind,
    Recording,
    Role,
    Station,
    Summary,
    SummaryFeedback,
    TriageDecision,
    utcnow,
)
from models import User as UserRow
from pretriage.ruleset import default_ruleset
from pretriage.service import Override, override_triage

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC = Path(__file__).parent / "static"


def urgency_level(urgency: str | None, uncertain: bool) -> str:
    """The badge a case shows: what pretriage did not understand is "unclear – a nurse
    assesses", never the non-urgent green (policy version 2)."""
    if uncertain and urgency in (None, "non_urgent"):
        return "uncertain"
    return urgency or "unknown"


templates.env.globals["urgency_level"] = urgency_level

WORKLIST_LIMIT = 200
DISPLAY_TZ = LOCAL_TZ

Rt = Annotated[Runtime, Depends(get_runtime)]


User = Annotated[StaffUser, Depends(require(Permission.CASES))]
Lead = Annotated[StaffUser, Depends(require(Permission.DASHBOARD))]


def page_language(request: Request, user: StaffUser | None = None) -> str:
    """The user's chosen language, else this browser session's choice, else the browser's
    preference among the catalogues, else Finnish."""
    if user is not None and user.language in LANGUAGES:
        return str(user.language)
    chosen = request.session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT


def request_now(request: Request) -> datetime:
    """Now, once per request: the runtime's clock (tests pin it), else the wall clock. What
    is "today" on a page comes from this."""
    clock = getattr(getattr(request.app.state, "runtime", None), "clock", None)
    return clock() if callable(clock) else utcnow()


def station_zone(name: str | None) -> tzinfo:
    """A station's time zone (the display zone if it has none or an unknown one)."""
    try:
        return ZoneInfo(name) if name else DISPLAY_TZ
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return DISPLAY_TZ


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    language = page_language(request, context.get("user"))
    t = messages(language)
    context = {
        "t": t,
        "num": partial(number, t=t),
        "percent": partial(percent, t=t),
        "lang": language,
        "languages": LANGUAGES,
        "csrf": csrf_token(request),
        "tz": DISPLAY_TZ,
        "Permission": Permission,
        "path": request.url.path,
        **context,
    }
    return templates.TemplateResponse(request, name, context, status_code=status)


def error_page(request: Request, status: int) -> Response:
    """A plain page saying what went wrong, with a way back (no health data, no detail)."""
    key = str(status) if status in (400, 403, 404) else "other"
    if status == 403 and getattr(request.state, "error_key", None) == "csrf":
        key = "csrf"  # an expired form, not a role that forbids it
    return render(request, "error.html", {"status": status, "key": key}, status=status)


def sign_in_options(request: Request) -> dict[str, bool]:
    """What the login page offers: the county's single sign-on when configured, the
    password form unless single sign-on has switched it off."""
    sso = getattr(request.app.state, "sso", None)
    return {"sso": sso is not None, "password_login": sso is None or sso.password_login}


def login_page(
    request: Request,
    error_key: str | None = None,
    status: int = 200,
    next: str | None = None,
    **values: object,
) -> Response:
    """The login page, with the catalogue's message ``error_key`` (filled with ``values``)
    when sign-in failed."""
    error = messages(page_language(request))[error_key].format(**values) if error_key else None
    context = {"error": error, "next": next, **sign_in_options(request)}
    return render(request, "login.html", context, status=status)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form; it goes on to ``next``, or to the page the user was sent here from
    (a path on this site only; anything else: the worklist)."""
    target = safe_next(next) or safe_next(request.session.get(NEXT_KEY))
    return login_page(request, next=target)


@router.post("/login")
def login(
    request: Request,
    runtime: Rt,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf: Annotated[str | None, Form()] = None,
    next: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    if not sign_in_options(request)["password_login"]:
        raise HTTPException(status_code=403, detail="password sign-in is switched off")
    name = username.strip()[:64]
    target = safe_next(next)
    address = request.client.host if request.client else "unknown"
    with runtime.db.session() as session:  # claimed and committed before any password check
        wait = claim_attempt(session, [f"user:{name}", f"addr:{address}"[:160]], utcnow())
        if wait is not None:
            session.add(
                AuditEvent(action="login_throttled", object_type="username", object_id=name)
            )
    if wait is not None:
        seconds = max(1, math.ceil(wait.total_seconds()))
        response = login_page(request, "login_throttled", 429, target, seconds=seconds)
        response.headers["Retry-After"] = str(seconds)
        return response
    with runtime.db.session() as session:
        user = authenticate(session, name, password)
        session.add(
            AuditEvent(user_id=user.id, action="login", object_type="user", object_id=user.id)
            if user
            else AuditEvent(action="login_failed", object_type="username", object_id=name)
        )
        user_id = user.id if user else None
        user_language = user.language if user else None
        # the region's view is the only page of the region role: its home
        home = "/region" if user is not None and user.role == Role.REGION else "/"
        if user_id is not None:
            forget_attempts(session, name)
            start_session(request, session, user_id, method="password")
    if user_id is None:
        return login_page(request, "login_failed", status=401, next=target)
    if user_language in LANGUAGES:
        request.session["lang"] = user_language
    return RedirectResponse(target or home, status_code=303)


@router.post("/language")
def choose_language(
    request: Request,
    runtime: Rt,
    lang: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    """The pages' language: kept in the session, and on the account when signed in."""
    check_csrf(request, csrf)
    if lang not in LANGUAGES:
        raise HTTPException(status_code=400, detail="unknown language")
    request.session["lang"] = lang
    if user_id := request.session.get("uid"):
        with runtime.db.session() as session:
            if (account := session.get(UserRow, str(user_id))) is not None:
                account.language = lang
    # Only back to a page of this site.
    return RedirectResponse(safe_next(next) or "/", status_code=303)


@router.post("/logout")
def logout(request: Request, runtime: Rt, csrf: Annotated[str | None, Form()] = None) -> Response:
    check_csrf(request, csrf)
    signed_in_by = request.session.get("auth")
    with runtime.db.session() as session:
        end_session(request, session)
    if signed_in_by == "sso" and sign_in_options(request)["sso"]:
        request.session[SIGN_OUT_AT_PROVIDER_KEY] = True
        return RedirectResponse("/logout/sso", status_code=303)  # and at the provider
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
    now = request_now(request)
    t = messages(page_language(request, user))
    with runtime.db.session() as session:
        rows = session.execute(
            query.order_by(
                Call.urgency_rank.desc(), Call.uncertain.desc(), Call.started_at.asc()
            ).limit(WORKLIST_LIMIT)
        ).all()
        zones = {
            sid: station_zone(name)
            for sid, name in session.execute(
                select(Station.id, Station.timezone).where(Station.id.in_(user.station_ids))
            )
        }
        cases = [
            {
                "call": call,
                "callback": cb,
                "age": (data or {}).get("age"),
                "window": _window_sign(cb, now),
                "window_text": window_text(cb, zones.get(call.station_id, DISPLAY_TZ), now, t),
            }
            for call, cb, data in rows
        ]
        return render(
            request,
            "worklist.html",
            {"user": user, "cases": cases, "state": state, "route": route,
             "states": WORKLIST_STATES},
        )  # fmt: skip


def window_text(cb: Callback | None, zone: tzinfo, now: datetime, t: Messages) -> str | None:
    """The promised callback window in the station's time, with its day unless that is
    today there: ``8.00–9.00``, ``huomenna 8.00–9.00``, ``ma 1.12. 8.00–9.00``."""
    if cb is None or cb.window_start is None or cb.window_end is None:
        return None
    today = now.astimezone(zone).date()
    return time_span(cb.window_start.astimezone(zone), cb.window_end.astimezone(zone), today, t)


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
    user: Lead,
    station: str | None = None,
    period: str = "week",
    to: str | None = None,
) -> Response:
    """The pilot's adoption figures for a station and period, as charts (server-rendered SVG:
    nothing to download, fast on a slow PC), with the same figures as CSV."""
    days = PERIODS.get(period, 7)
    stations = sorted(user.station_ids)
    chosen = station if station in user.station_ids else (stations[0] if stations else None)
    today = request_now(request).astimezone(LOCAL_TZ).date()
    try:  # the period ends with the local day ``to`` (default: today)
        last = date.fromisoformat(to) if to else today
    except ValueError:
        last = today
    first = last - timedelta(days=days - 1)
    since, until = local_days(first, last)
    with runtime.db.session() as session:
        figures = compute(session, [chosen] if chosen else [], since, until)
        names = dict(
            session.execute(select(Station.id, Station.name).where(Station.id.in_(stations))).all()
        )
    return render(
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
                f"/api/v1/stats?station={chosen}&from={first.isoformat()}"
                f"&to={(last + timedelta(days=1)).isoformat()}&format=csv"
            ),
            "bars": _bars,
            "timeline": timeline_chart(figures),
            "zip": zip,
            "first": first,
            "last": last,
        },
    )


Region = Annotated[StaffUser, Depends(require(Permission.REGION))]
SHARES = frozenset(
    {"completion_rate", "nurse_queue", "callback", "digital_path", "uncertain",
     "callbacks_within_window", "summary_used", "nurses_using", "useful", "understandable",
     "recommend", "agreement_rate"}
)  # fmt: skip
"""The region's measures that are shares (shown as percentages, charted on 0–100 %)."""


@router.get("/region", response_class=HTMLResponse)
def region_page(
    request: Request,
    runtime: Rt,
    user: Region,
    period: str = "month",
    to: str | None = None,
    sort: str = "name",
    order: str = "asc",
) -> Response:
    """Every station's adoption figures side by side for a period, sortable by any measure
    (links, no script), with a chart per measure and the same rows as CSV and JSON."""
    from esitieto.region import MEASURES, region_figures, sort_rows

    days = PERIODS.get(period, 30)
    today = request_now(request).astimezone(LOCAL_TZ).date()
    try:
        last = date.fromisoformat(to) if to else today
    except ValueError:
        last = today
    first = last - timedelta(days=days - 1)
    since, until = local_days(first, last)
    sort = sort if sort == "name" or sort in MEASURES else "name"
    descending = order == "desc"
    with runtime.db.session() as session:
        stations = list(session.scalars(select(Station).order_by(Station.name)))
        rows = sort_rows(region_figures(session, stations, since, until), sort, descending)
    query = f"from={first.isoformat()}&to={(last + timedelta(days=1)).isoformat()}"
    charts = []
    for m in MEASURES:
        values = [r.values[m] for r in rows]
        top = max((float(v) for v in values if v is not None), default=0.0)
        scale = 1.0 if m in SHARES else top
        charts.append(
            (
                m,
                [
                    (r.name, v, 100 * float(v) / scale if v is not None and scale else 0.0)
                    for r, v in zip(rows, values, strict=True)
                ],
            )
        )
    return render(
        request,
        "region.html",
        {
            "user": user,
            "rows": rows,
            "measures": MEASURES,
            "shares": SHARES,
            "charts": charts,
            "sort": sort,
            "descending": descending,
            "period": period if period in PERIODS else "month",
            "periods": list(PERIODS),
            "first": first,
            "last": last,
            "csv_url": f"/api/v1/region?{query}&format=csv",
            "json_url": f"/api/v1/region?{query}",
        },
    )


TIMELINE_ROUTES = ("nurse_queue", "callback", "digital_path", "unknown")
"""The stacking order of the timeline's bars (``unknown``: not routed, e.g. still in a call)."""


@dataclass(frozen=True)
class TimelineBar:
    label: str
    """Axis label; empty where labels would crowd."""
    title: str
    """The bar's full period, for its tooltip and the table."""
    x: float
    width: float
    calls: int
    submissions: int
    segments: list[tuple[str, float, float, int]]
    """(route, y, height, count) from the bottom up, in the SVG's units."""


@dataclass(frozen=True)
class TimelineChart:
    step: str
    top: int
    """The y axis' top value (at least 1)."""
    bars: list[TimelineBar]
    width: int = 640
    height: int = 200
    plot_top: int = 10
    plot_bottom: int = 170
    plot_left: int = 36


def timeline_chart(figures: Stats) -> TimelineChart:
    """Calls over the period as stacked bars by route (drawn in SVG by the template)."""
    chart = TimelineChart(figures.timeline_step, 1, [])
    buckets = figures.timeline
    if not buckets:
        return chart
    top = max(max(b.calls for b in buckets), 1)
    span = chart.plot_bottom - chart.plot_top
    slot = (chart.width - chart.plot_left - 4) / len(buckets)
    every = max(1, round(len(buckets) / 8))
    hourly = figures.timeline_step == "hour"
    bars = []
    for i, b in enumerate(buckets):
        local = b.start.astimezone(DISPLAY_TZ)
        label = local.strftime("%H") if hourly else local.strftime("%d.%m.")
        counts = [(route, b.routing.get(route, 0)) for route in TIMELINE_ROUTES[:-1]]
        counts.append(("unknown", b.calls - sum(n for _, n in counts)))
        y = float(chart.plot_bottom)
        segments = []
        for route, count in counts:
            if count > 0:
                height = span * count / top
                y -= height
                segments.append((route, round(y, 1), round(height, 1), count))
        bars.append(
            TimelineBar(
                label if i % every == 0 else "",
                local.strftime("%d.%m. %H:00") if hourly else label,
                round(chart.plot_left + i * slot + slot * 0.1, 1),
                round(slot * 0.8, 1),
                b.calls,
                b.submissions,
                segments,
            )
        )
    return replace(chart, top=top, bars=bars)


def _bars(counts: dict[str, int], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Bar rows for a horizontal SVG bar chart: key, label, value, width in percent; no rows
    when there is nothing to count (the page then says so instead of drawing an empty box)."""
    top = max(counts.values(), default=0) or 1
    return [
        {"key": k, "label": labels.get(k, k), "value": v, "width": round(100 * v / top, 1)}
        for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
        if v > 0
    ]


@router.get("/cases/{call_id}", response_class=HTMLResponse)
def case_page(call_id: str, request: Request, runtime: Rt, user: User, saved: int = 0) -> Response:
    with runtime.db.session() as session:
        call = _visible_call(session, call_id, user)
        context = _case_context(request, session, call, user)
        _audit_case(session, user, call, "view_case")
        return render(
            request,
            "case.html",
            {**context, "notice": messages(page_language(request, user)).saved if saved else None},
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
            if runtime.settings.fhir.base_url:  # the record gets the nurse's decision too
                enqueue(session, JobKind.EXPORT_FHIR, call.id)
        except (ValidationError, ValueError) as exc:
            session.rollback()
            call = _visible_call(session, call_id, user)
            return render(
                request,
                "case.html",
                {
                    **_case_context(request, session, call, user),
                    "error": _override_error(exc, messages(page_language(request, user))),
                    "form": form,
                },
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
    with runtime.db.session() as session:
        call = _visible_call(session, call_id, user)
        if usage not in SUMMARY_USES:  # the form again, saying what is missing
            t = messages(page_language(request, user))
            context = _case_context(request, session, call, user)
            context["usage_error"], context["usage_comment"] = t.summary_use_missing, comment
            return render(request, "case.html", context, status=422)
        session.add(
            SummaryFeedback(call_id=call.id, user_id=user.id, usage=usage,
                            comment=comment.strip()[:1000] or None)
        )  # fmt: skip
        _audit_case(session, user, call, "summary_feedback", {"usage": usage})
    return RedirectResponse(f"/cases/{call_id}?saved=1", status_code=303)


def model_limit(model: type[BaseModel], field: str, limit: str) -> int:
    """A field's length limit (``min_length``/``max_length``) as the model declares it, so a
    message can name the number without typing it a second time."""
    for constraint in model.model_fields[field].metadata:
        if isinstance(value := getattr(constraint, limit, None), int):
            return value
    raise LookupError(f"{model.__name__}.{field} declares no {limit}")


REASON_MIN_LENGTH = model_limit(Override, "reason", "min_length")
"""The shortest reason pretriage's override accepts (for the message asking for one)."""


def _override_error(exc: Exception, t: Messages) -> str:
    """The nurse's words for what is wrong with the override form."""
    text = str(exc)
    for needle, message in (
        ("urgent case cannot go to a digital path", t.override_digital_urgent),
        ("name the digital path", t.override_need_path),
        ("unknown digital path", t.override_need_path),
        ("only goes with the digital_path route", t.override_path_only_digital),
    ):
        if needle in text:
            return str(message)
    wrong = (
        {e["loc"][0] for e in exc.errors() if e["loc"]}
        if isinstance(exc, ValidationError)
        else set()
    )
    for field, message in (
        ("urgency", t.override_need_urgency),
        ("route", t.override_need_route),
        ("reason", t.override_need_reason.format(min_length=REASON_MIN_LENGTH)),
    ):
        if field in wrong:
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


def _case_context(
    request: Request, session: Session, call: Call, user: StaffUser
) -> dict[str, Any]:
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
        "callback_window": window_text(
            callback,
            station_zone(station.timezone if station else None),
            request_now(request),
            messages(page_language(request, user)),
        ),
        "recordings": recordings,
        "digital_paths": list(default_ruleset().digital_paths),
        "error": None,
        "usage_error": None,
        "usage_comment": "",
        # What pretriage did not understand is the nurse's to choose, not a pre-checked
        # "non-urgent" one click away from being confirmed.
        "form": {
            "urgency": None if call.uncertain else call.urgency,
            "route": None if call.uncertain else call.route,
            "reason": "",
            "digital_path": "",
        },
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
    try:
        audio = runtime.storage.get(key)
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail="no recording") from None
    return Response(audio, media_type=content_type, headers={"Cache-Control": "private"})


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


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """The site's icon for browsers that ask for it here (no sign-in; cached for a week)."""
    return FileResponse(
        STATIC / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=604800"},
    )
