"""Twilio voice webhooks. Each is verified by signature, idempotent, and answers fast."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from integrations.twilio import signature_is_valid
from models import Call, CallState, Station
from pretriage.service import offered_paths
from voicebot import assess as assess_
from voicebot import service, twiml
from voicebot.deps import VoicebotDeps, get_deps
from voicebot.dialogue import (
    NURSE_KEY,
    REPEAT_KEY,
    Answers,
    State,
    Step,
    advance,
    after_recording,
    decide_next,
    identity_result,
    prompt_for,
)
from voicebot.identity import IdentityError, IdentityVault, parse_keyed_identity
from voicebot.openapi import (
    NO_STATION,
    RECORDING_STATUSES,
    RESPONSES,
    TWIML,
    CallForm,
    GatherForm,
    RecordedForm,
    RecordingStatusForm,
    StatusForm,
    webhook,
)
from voicebot.prompts import DEFAULT_LANGUAGE, catalogue, spoken_number

log = logging.getLogger(__name__)

LIVE = frozenset({"/twilio/voice", "/twilio/gather", "/twilio/recorded", "/twilio/no-recording",
                  "/twilio/assess"})  # fmt: skip
"""The webhooks a caller waits on: Twilio would play its own error message to them."""


class LiveCallRoute(APIRoute):
    """A caller on the line never gets a 500: whatever fails inside a live webhook (a bug, a
    database outage, a station's broken settings), the caller is put through to the
    station's nurses, or when even the station cannot be found, told to call again and 112
    in an emergency. Refusals stay refusals (a wrong signature is still 403)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.path_format not in LIVE:
            return handler

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (HTTPException, RequestValidationError):
                raise
            except Exception as exc:
                # Only the type: a message may carry the caller's words.
                log.error("%s failed (%s): the caller goes to a nurse", request.url.path,
                          type(exc).__name__)  # fmt: skip
                form = await request.form()
                to = form.get("To")
                deps: VoicebotDeps = request.app.state.voicebot
                body = await run_in_threadpool(_to_a_nurse, deps, to if isinstance(to, str) else "")
                return _xml(body)

        return guarded


def _to_a_nurse(deps: VoicebotDeps, to_number: str) -> str:
    try:
        with deps.session() as session:
            station = service.find_station(session, to_number)
            if station is not None:
                return twiml.fallback_to_nurses(station.id, catalogue(station.language),
                                                voice=station.voice)  # fmt: skip
    except Exception as exc:
        log.error("no station from the database for the fallback (%s)", type(exc).__name__)
    known = deps.known_stations.get(service.normalise_number(to_number))
    if known is not None:  # the database is away: the station as it was at start
        station_id, language, voice = known
        return twiml.fallback_to_nurses(station_id, catalogue(language), voice=voice)
    return twiml.goodbye(catalogue(DEFAULT_LANGUAGE), "technical_problem", voice=None)


router = APIRouter(
    prefix="/twilio",
    tags=["twilio"],
    route_class=LiveCallRoute,
    default_response_class=Response,  # TwiML, as RESPONSES says; not FastAPI's JSON
    responses=RESPONSES,
)


def _public_url(request: Request, deps: VoicebotDeps) -> str:
    """The URL Twilio signed: the configured public base when behind a proxy."""
    base = deps.public_base_url
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return base.rstrip("/") + request.url.path + query


async def verified_form(
    request: Request, deps: Annotated[VoicebotDeps, Depends(get_deps)]
) -> dict[str, str]:
    """The webhook's form fields, after ``X-Twilio-Signature`` checked out (403 otherwise)."""
    try:
        form: FormData = await request.form()
    except Exception as exc:
        raise HTTPException(status_code=400, detail="malformed form body") from exc
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    token = deps.auth_token.get_secret_value()
    signature = request.headers.get("X-Twilio-Signature")
    if not signature_is_valid(token, _public_url(request, deps), params, signature):
        log.warning("rejected a webhook with a missing or wrong signature: %s", request.url.path)
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    return params


Form = Annotated[dict[str, str], Depends(verified_form)]
Deps = Annotated[VoicebotDeps, Depends(get_deps)]


def _call_params(form: dict[str, str]) -> service.CallParams:
    try:
        return service.CallParams.from_form(form)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


def _recording_fields(form: dict[str, str]) -> tuple[str, str | None]:
    """``RecordingSid`` (empty when there is none) and ``RecordingUrl``, checked at the edge."""
    sid = (form.get("RecordingSid") or "").strip()
    if sid and not service.RECORDING_SID.fullmatch(sid):
        raise HTTPException(status_code=400, detail="RecordingSid is not a Twilio recording SID")
    url = form.get("RecordingUrl") or None
    if url is not None and len(url) > 500:
        raise HTTPException(status_code=400, detail="RecordingUrl longer than 500 characters")
    return sid, url


def _xml(body: str) -> Response:
    return Response(content=body, media_type=TWIML)


@router.post("/voice", openapi_extra=webhook(CallForm))
def incoming_call(form: Form, deps: Deps) -> Response:
    """A new call (or Twilio retrying it): find the station by the called number and greet."""
    params = _call_params(form)
    with deps.session() as session:
        station = service.find_station(session, params.to_number)
        if station is None:
            log.warning("call to a number with no station: %s", params.to_number)
            return _xml(twiml.goodbye(catalogue(DEFAULT_LANGUAGE), "unknown_number", voice=None))
        call = service.get_or_create_call(session, station, params)
        answers = service.load_answers(call, station)
        if call.state != CallState.IN_PROGRESS:
            return _xml(twiml.goodbye(catalogue(answers.language), "closing", voice=station.voice))
        closed = service.station_closed(station, deps.clock())
        if call.dialogue_step in ("greeting", State.WELCOME.value):
            step = prompt_for(State.WELCOME, answers, closed=closed)
        else:  # a retried webhook mid-call: say the current question again
            step = prompt_for(State(call.dialogue_step), answers, closed=closed)
        service.save(call, answers, step)
        return _render(deps.clock(), session, call, station, answers, step)


def _current_prompt(call: Call, answers: Answers) -> Step:
    """The question the call is at, asked again; goodbye when it is at none (it has ended, or
    no question was asked yet: its first webhook to arrive was not ``/voice``)."""
    known = {st.value for st in State}
    current = State(call.dialogue_step) if call.dialogue_step in known else State.DONE
    return prompt_for(current, answers)


def _require_call(session: Session, params: service.CallParams) -> tuple[Station, Call]:
    station = service.find_station(session, params.to_number)
    if station is None:
        raise HTTPException(
            status_code=404, detail=f"no station has the number {params.to_number or '(none)'}"
        )
    return station, service.get_or_create_call(session, station, params)


@router.post("/gather", openapi_extra=webhook(GatherForm), responses=NO_STATION)
def gather(form: Form, deps: Deps, state: State) -> Response:
    """The caller pressed keys (or did not, in time) at ``state``'s question."""
    params = _call_params(form)
    digits = (form.get("Digits") or "").strip()
    with deps.session() as session:
        station, call = _require_call(session, params)
        answers = service.load_answers(call, station)
        closed = service.station_closed(station, deps.clock())
        if call.dialogue_step != state.value:
            # A retried or late webhook for a question already answered: change nothing.
            return _render(
                deps.clock(), session, call, station, answers, _current_prompt(call, answers)
            )
        if state is State.IDENTITY and digits not in ("", "#", REPEAT_KEY, NURSE_KEY):
            step = identity_result(answers, _keep_identity(deps, call, digits))
        else:
            step = advance(
                state,
                digits or None,
                answers,
                closed=closed,
                feedback_question=service.feedback_question(call),
            )
        service.save(call, answers, step)
        service.apply_outcome(session, call, answers, now=deps.clock())
        return _render(deps.clock(), session, call, station, answers, step)


@router.post("/recorded", openapi_extra=webhook(RecordedForm), responses=NO_STATION)
def recorded(form: Form, deps: Deps, step: str = "reason") -> Response:
    """The ``<Record>`` action: keep the recording, then assess it while the caller waits."""
    params = _call_params(form)
    recording_sid, url = _recording_fields(form)
    with deps.session() as session:
        station, call = _require_call(session, params)
        if recording_sid:
            service.upsert_recording(
                session,
                call,
                recording_sid=recording_sid,
                url=url,
                duration_s=_seconds(form.get("RecordingDuration")),
                prompt_key=step[:32],
            )
        answers = service.load_answers(call, station)
        nxt = after_recording(answers, recorded=bool(recording_sid))
        service.save(call, answers, nxt)
        return _render(deps.clock(), session, call, station, answers, nxt)


@router.post("/no-recording", openapi_extra=webhook(CallForm), responses=NO_STATION)
def no_recording(form: Form, deps: Deps, step: str = "reason") -> Response:
    """The caller said nothing: a nurse will still see the case; go on to the outcome."""
    params = _call_params(form)
    with deps.session() as session:
        station, call = _require_call(session, params)
        answers = service.load_answers(call, station)
        nxt = after_recording(answers, recorded=False)
        service.save(call, answers, nxt)
        return _render(deps.clock(), session, call, station, answers, nxt)


_ASSESS_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="in-call-assess")
"""Callers waiting for their assessment wait here, not in the server's shared thread pool, so
the other webhooks of every call in flight keep answering at once."""


@router.post("/assess", openapi_extra=webhook(CallForm), responses=NO_STATION)
async def assess_answer(form: Form, deps: Deps) -> Response:
    """The budgeted step: transcribe and pretriage the free answer during the call.

    The only webhook allowed to take seconds (up to ``voicebot.in_call_budget_s``); no
    transaction is open meanwhile."""
    params = _call_params(form)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_ASSESS_POOL, _assess, deps, params)


def _assess(deps: VoicebotDeps, params: service.CallParams) -> Response:
    with deps.session() as session:
        station, call = _require_call(session, params)
        answers = service.load_answers(call, station)
        if call.dialogue_step != State.ASSESS.value:
            return _render(
                deps.clock(), session, call, station, answers, _current_prompt(call, answers)
            )
        recording = service.reason_recording(session, call)
        given = service.given_words(session, recording[0]) if recording else None
        url = recording[1] if recording else None
        call_id, language = call.id, answers.language
        paths = offered_paths(station)
        age, sex = service.identity_facts(deps.identity_key, call, today=deps.clock().date())
    heard: assess_.Heard | None = None
    if answers.heard is not None:
        heard = assess_.Heard(answers.heard, answers.heard_confidence)
    elif given is not None:
        heard = assess_.Heard(given, None)
    elif url:
        heard = assess_.hear(
            deps.fetch_recording,
            deps.speech_to_text(),
            url,
            language=language,
            budget_s=deps.in_call_budget_s,
        )
    context = assess_.context_of(answers, age, sex)
    assessment, _decision = assess_.assess(
        answers, heard, context, paths, detector=deps.analyze.detector
    )
    if assessment.route == "digital_path" and deps.sms is None:
        # No way to send the link from here: a nurse calls back instead.
        assessment = replace(assessment, route="callback", digital_path=None)
    with deps.session() as session:
        station, call = _require_call(session, params)
        if call.id != call_id or call.dialogue_step != State.ASSESS.value:
            return _render(
                deps.clock(), session, call, station, answers, _current_prompt(call, answers)
            )
        if heard is not None:
            answers.heard, answers.heard_confidence = heard.text, heard.confidence
        answers.assessed = True
        answers.digital_path = assessment.digital_path
        step = decide_next(
            answers,
            assessment,
            closed=service.station_closed(station, deps.clock()),
            feedback_question=service.feedback_question(call),
        )
        service.save(call, answers, step)
        service.apply_outcome(session, call, answers, now=deps.clock())
        return _render(deps.clock(), session, call, station, answers, step)


def _render(
    now: datetime, session: Session, call: Call, station: Station, answers: Answers, step: Step
) -> Response:
    cat = catalogue(answers.language)
    values = {"station": station.name, "urgent_line": spoken_number(station.urgent_number)}
    if "callback_window" in step.say:
        values["window"] = service.callback_window_text(session, call, station, cat, now)
    if "offer_sms" in step.say:
        values["service"] = cat.services.get(answers.digital_path or "", "")
    if step.dial_urgent_line:
        values["urgent_number"] = station.urgent_number
    return _xml(
        twiml.render(
            step,
            cat,
            station_id=station.id,
            voice=station.voice,
            values=values,
            rate=station.speech_rate,
        )
    )


def _keep_identity(deps: VoicebotDeps, call: Call, digits: str) -> bool:
    """Validate the keyed identity code and keep it sealed; False when it is not valid."""
    try:
        keyed = parse_keyed_identity(digits.rstrip("#"), today=deps.clock().date())
    except IdentityError:
        return False
    vault = IdentityVault(deps.identity_key)
    payload = json.dumps(
        {"code": keyed.code, "birth_date": keyed.birth_date.isoformat(), "sex": keyed.sex}
    )
    call.identity_sealed = vault.seal(payload, context=call.id)
    return True


def done_again_while_the_database_restarts(
    handler: Callable[..., Response],
) -> Callable[..., Response]:
    """Twilio does not send a status callback again: one that meets a database restart (a
    few seconds) is done again until it is through, rather than answered 500 and lost (the
    callbacks are stored once by their key, so doing one twice changes nothing)."""

    @functools.wraps(handler)
    def retrying(*args: Any, **kwargs: Any) -> Response:
        deadline, wait = time.monotonic() + CALLBACK_RETRY_S, 0.25
        while True:
            try:
                return handler(*args, **kwargs)
            except OperationalError as exc:
                if time.monotonic() + wait > deadline:
                    raise
                log.warning("%s: database unavailable (%s), trying again", handler.__name__,
                            type(exc).__name__)  # fmt: skip
                time.sleep(wait)
                wait = min(wait * 2, 2.0)

    return retrying


CALLBACK_RETRY_S = 8.0
"""Within Twilio's 15 s webhook timeout."""


@router.post("/status", openapi_extra=webhook(StatusForm))
@done_again_while_the_database_restarts
def call_status(form: Form, deps: Deps) -> Response:
    """Call status callback: a final status ends the call and starts the pipeline."""
    params = _call_params(form)
    status = (form.get("CallStatus") or "").strip()
    if status not in service.CALL_STATUSES:
        raise HTTPException(status_code=400, detail="unknown CallStatus")
    sequence = (form.get("SequenceNumber") or "")[:10]
    key = f"status:{params.call_sid}:{status}:{sequence}"
    with deps.session() as session:
        station = service.find_station(session, params.to_number)
        call = service.find_call(session, params.call_sid)
        if call is None and station is not None:
            call = service.get_or_create_call(session, station, params)
        if not service.store_event(
            session,
            kind="status",
            dedupe_key=key,
            call=call,
            call_sid=params.call_sid,
            form=form,
            status=status,
        ):
            return _xml(twiml.empty())
        if call is not None and status in service.FINAL_CALL_STATUSES:
            service.end_call(
                session,
                call,
                twilio_status=status,
                duration_s=_seconds(form.get("CallDuration")),
                now=deps.clock(),
            )
        elif call is not None:
            service.progress(call, status, _sequence(sequence))
    return _xml(twiml.empty())


def _sequence(value: str) -> int | None:
    """Twilio's ``SequenceNumber`` (0, 1, 2… per call); None when absent or not a number."""
    return int(value) if value.isascii() and value.isdigit() else None


@router.post("/recording-status", openapi_extra=webhook(RecordingStatusForm), responses=NO_STATION)
@done_again_while_the_database_restarts
def recording_status(form: Form, deps: Deps, step: str = "reason") -> Response:
    """Recording status callback: the audio is ready to fetch, or there is none."""
    params = _call_params(form)
    recording_sid, url = _recording_fields(form)
    status = (form.get("RecordingStatus") or "").strip()
    if not recording_sid:
        raise HTTPException(status_code=400, detail="RecordingSid missing")
    if status not in RECORDING_STATUSES:
        raise HTTPException(status_code=400, detail="unknown RecordingStatus")
    with deps.session() as session:
        _station, call = _require_call(session, params)
        if not service.store_event(
            session,
            kind="recording",
            dedupe_key=f"recording:{recording_sid}:{status}",
            call=call,
            call_sid=params.call_sid,
            form=form,
            status=status,
        ):
            return _xml(twiml.empty())
        rec = service.upsert_recording(
            session,
            call,
            recording_sid=recording_sid,
            url=url if status == "completed" else None,
            duration_s=_seconds(form.get("RecordingDuration")),
            prompt_key=step[:32],
        )
        if status in ("absent", "failed"):
            service.mark_recording_absent(session, rec, f"Twilio recording status: {status}")
    return _xml(twiml.empty())


SECONDS = re.compile(r"[0-9]{1,5}")
"""A duration Twilio reports: whole seconds, and no call lasts a day (86,400 s)."""


def _seconds(value: str | None) -> int | None:
    """The duration in a form field; None when absent or not one (``int()`` would also take
    "٣", " 7", "1_000" and a number too large for the column)."""
    if value is None or not SECONDS.fullmatch(value) or int(value) > 86_400:
        return None
    return int(value)
