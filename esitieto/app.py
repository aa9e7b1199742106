"""The app factory: settings → runtime → FastAPI app (webhooks, staff pages, JSON API)."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from esitieto import api
from esitieto.demo import DemoLogin, ensure_demo
from esitieto.headers import SecurityHeaders
from esitieto.limits import BodyLimit
from esitieto.runtime import Runtime
from esitieto.settings import Settings
from esitieto.web import pages, sso, staff
from esitieto.web.auth import LoginRequired, StaffUser, current_user
from esitieto.web.sso import CountySignIn
from esitieto.worker import Periodic, Worker
from integrations.jobs import LANES
from models import Job, JobState, Station
from voicebot import endpoints as voicebot_endpoints
from voicebot.retention import RetentionPolicy, apply_retention
from voicebot.tasks import Pipeline

log = logging.getLogger(__name__)

MACHINE_PATHS = ("/api/", "/twilio/", "/healthz", "/static/", "/openapi.json", "/docs")


def prepare(runtime: Runtime) -> DemoLogin | None:
    """Load the ruleset, migrate the schema, seed the demo data and check every station's
    settings; safe on every start.

    The ruleset (and with it the lexicon), the stations' pretriage settings and the language
    model configuration are checked here so that a mistake stops the app at start-up with a
    clear message, never during a call.
    """
    from pretriage.ruleset import default_ruleset
    from pretriage.service import check_station

    ruleset = default_ruleset()
    runtime.phraser  # noqa: B018 - a wrong backend configuration fails here
    runtime.sms  # noqa: B018 - and so does a wrong SMS sender
    runtime.detector  # noqa: B018 - and a sign classifier that does not fit its data or model
    with runtime.db.startup_lock():  # web replicas and workers may start together
        runtime.db.migrate()
        if runtime.delivery is not None:
            runtime.delivery.install_schema()  # procrastinate's tables, once
        with runtime.db.session() as session:
            demo = ensure_demo(session, runtime.settings)
            session.flush()
            known = runtime.voicebot.known_stations
            for station in session.scalars(select(Station)):
                check_station(station, ruleset)
                known[station.phone_number] = (station.id, station.language, station.voice)
    return demo


def make_worker(runtime: Runtime, lanes: Collection[str] = LANES) -> Worker:
    """A worker for the jobs of ``lanes`` (and the housekeeping, if it is one of them)."""
    pipeline = Pipeline(runtime.voicebot)
    every = runtime.settings.worker
    keep = runtime.settings.retention
    policy = RetentionPolicy(keep.recordings_days, keep.transcripts_days, keep.cases_days)

    def retention() -> object:
        return apply_retention(runtime.db.session, runtime.storage, policy, runtime.clock())

    delivery = runtime.delivery
    relay = (
        [Periodic(every.relay_every_s, partial(delivery.relay, runtime.db))]
        if delivery is not None
        else []
    )

    return Worker(
        runtime.db,
        every,
        {kind: spec for kind, spec in pipeline.specs().items() if spec.lane in lanes},
        periodic=[
            Periodic(every.reconcile_every_s, pipeline.reconcile_with_twilio),
            Periodic(every.sweep_every_s, pipeline.sweep_abandoned_calls),
            Periodic(every.sweep_every_s, pipeline.sweep_stalled_cases),
            Periodic(keep.every_s, retention),
            *relay,
        ]
        if "housekeeping" in lanes
        else [],
        name="+".join(lane for lane in LANES if lane in lanes),
    )


def start_lanes(runtime: Runtime, lanes: Collection[str]) -> list[Worker]:
    """One worker thread per lane, so a slow download or a long transcription never holds up
    another call's case; ``stop_lanes`` ends them."""
    unknown = sorted(set(lanes) - set(LANES))
    if unknown:
        raise ValueError(f"unknown worker lane(s) {', '.join(unknown)}: use {', '.join(LANES)}")
    workers = [make_worker(runtime, (lane,)) for lane in LANES if lane in lanes]
    for worker in workers:
        worker.start_thread()
    return workers


def run_delivered_jobs(runtime: Runtime, lanes: Collection[str], stop: threading.Event) -> None:
    """With procrastinate: run the jobs it delivers, one worker per lane, until ``stop``;
    a job queued again when it ends (a retry, a rerun) is handed over again."""
    delivery = runtime.delivery
    if delivery is None:
        raise ValueError("ESITIETO_WORKER__ENGINE is not procrastinate")
    worker = make_worker(runtime, [lane for lane in lanes if lane != "housekeeping"])

    def run(job_id: str) -> None:
        worker.run_one(job_id)
        with runtime.db.session() as session:
            job = session.get(Job, job_id)
            again = job is not None and job.state == JobState.QUEUED
            handed = (job.id, job.kind, job.run_after) if again and job is not None else None
        if handed is not None:
            delivery.hand_over([handed])

    delivery.run_workers(list(lanes), run, stop)


def stop_lanes(workers: list[Worker], timeout_s: float = 30.0) -> None:
    for worker in workers:
        worker.stop.set()
        worker.wake.set()
    for worker in workers:
        if worker.thread is not None:
            worker.thread.join(timeout=timeout_s)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings or Settings())
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare(runtime)
        workers: list[Worker] = []
        if settings.worker.mode == "inprocess":
            workers = start_lanes(runtime, settings.worker.lanes)
        runtime.worker_alive = lambda: bool(workers) and all(w.alive for w in workers)
        # What start-up loaded (lexicons, rulesets, templates, the ORM) lives as long as the
        # process: frozen, the collector stops re-scanning it, and a full collection no longer
        # adds ~100 ms to whichever page it lands on (measured by `esitieto bench web`).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            stop_lanes(workers)
            runtime.close()

    # The API's description is for staff (below), and no Swagger page: it would load its
    # scripts from a CDN that a hospital network does not reach and the pages' policy refuses.
    app = FastAPI(
        title="Esitieto",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(user: Annotated[StaffUser, Depends(current_user)]) -> JSONResponse:
        return JSONResponse(app.openapi())

    app.state.runtime = runtime
    app.state.voicebot = runtime.voicebot
    app.state.sso = CountySignIn(settings.sso) if settings.sso.issuer else None
    if app.state.sso is not None and not settings.web.secure_cookies:
        log.warning(
            "single sign-on without ESITIETO_WEB__SECURE_COOKIES: the sign-in's state and "
            "PKCE verifier travel in a cookie that is not https-only"
        )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie="esitieto_session",
        max_age=settings.web.session_max_age_s,
        same_site="lax",
        https_only=settings.web.secure_cookies,
    )
    app.add_middleware(
        SecurityHeaders, https=settings.web.secure_cookies, form_targets=_sso_origins(settings)
    )
    app.add_middleware(BodyLimit, max_bytes=settings.web.max_body_bytes)  # outermost: first
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).parent / "web" / "static")), "static"
    )
    app.include_router(voicebot_endpoints.router)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(staff.router)
    app.include_router(sso.router)

    @app.exception_handler(StarletteHTTPException)
    async def _error_page(request: Request, exc: StarletteHTTPException) -> Response:
        """Staff pages answer errors with a page in the user's language; the webhooks and
        the JSON API keep FastAPI's JSON answers."""
        if request.url.path.startswith(MACHINE_PATHS) or request.method not in ("GET", "POST"):
            return await http_exception_handler(request, exc)
        return pages.error_page(request, exc.status_code)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    return app


def _sso_origins(settings: Settings) -> tuple[str, ...]:
    """The sign-in provider's origin (``https://host[:port]``), where forms may lead."""
    if not settings.sso.issuer:
        return ()
    parts = urlsplit(settings.sso.issuer)
    return (f"{parts.scheme}://{parts.netloc}",)
