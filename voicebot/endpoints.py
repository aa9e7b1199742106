"""Twilio voice webhooks. Each is verified by signature, idempotent, and answers fast."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from esitieto.runtime import Runtime, get_runtime
from integrations.twilio import signature_is_valid
from models import Call, CallState, Station
from voicebot import service, twiml
from voicebot.prompts import DEFAULT_LANGUAGE, catalogue

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

TWIML = "application/xml"


def _public_url(request: Request, runtime: Runtime) -> str:
    """The URL Twilio signed: the configured public base when behind a proxy."""
    base = runtime.settings.twilio.public_base_url
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return base.rstrip("/") + request.url.path + query


async def verified_form(
    request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]
) -> dict[str, str]:
    """The webhook's form fields, after ``X-Twilio-Signature`` checked out (403 otherwise)."""
    try:
        form: FormData = await request.form()
    except Exception as exc:
        raise HTTPException(status_code=400, detail="malformed form body") from exc
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    token = runtime.settings.twilio_auth_token.get_secret_value()
    signature = request.headers.get("X-Twilio-Signature")
    if not signature_is_valid(token, _public_url(request, runtime), params, signature):
        log.warning("rejected a webhook with a missing or wrong signature: %s", request.url.path)
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    return params


Form = Annotated[dict[str, str], Depends(verified_form)]
Rt = Annotated[Runtime, Depends(get_runtime)]


def _call_params(form: dict[str, str]) -> service.CallParams:
    try:
        return service.CallParams.from_form(form)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


def _xml(body: str) -> Response:
    return Response(content=body, media_type=TWIML)


@router.post("/voice")
def incoming_call(form: Form, runtime: Rt) -> Response:
    """A new call: find the station by the called number and ask for the reason."""
    params = _call_params(form)
    with runtime.db.session() as session:
        station = service.find_station(session, params.to_number)
        if station is None:
            log.warning("call to a number with no station: %s", params.to_number)
            return _xml(twiml.goodbye(catalogue(DEFAULT_LANGUAGE), "unknown_number", voice=None))
        call = service.get_or_create_call(session, station, params)
        cat = catalogue(call.language)
        if call.state != CallState.IN_PROGRESS:
            return _xml(twiml.goodbye(cat, "closing", voice=station.voice))
        if call.dialogue_step == "greeting":
            call.dialogue_step = "reason"
        return _xml(twiml.ask_reason(cat, station_name=station.name, voice=station.voice, base=""))


def _require_call(session: Session, params: service.CallParams) -> tuple[Station, Call]:
    station = service.find_station(session, params.to_number)
    if station is None:
        raise HTTPException(status_code=404, detail="unknown station")
    return station, service.get_or_create_call(session, station, params)


@router.post("/recorded")
def recorded(form: Form, runtime: Rt, step: str = "reason") -> Response:
    """The ``<Record>`` action: the answer is recorded; say goodbye."""
    params = _call_params(form)
    recording_sid = (form.get("RecordingSid") or "").strip()
    with runtime.db.session() as session:
        station, call = _require_call(session, params)
        if recording_sid:
            service.upsert_recording(
                session,
                call,
                recording_sid=recording_sid,
                url=form.get("RecordingUrl"),
                duration_s=_int(form.get("RecordingDuration")),
                prompt_key=step[:32],
            )
        call.dialogue_step = "closing"
        return _xml(twiml.goodbye(catalogue(call.language), "closing", voice=station.voice))


@router.post("/no-recording")
def no_recording(form: Form, runtime: Rt, step: str = "reason") -> Response:
    """The caller said nothing: close kindly; the case still reaches a nurse."""
    params = _call_params(form)
    with runtime.db.session() as session:
        station, call = _require_call(session, params)
        call.dialogue_step = "closing"
        return _xml(twiml.goodbye(catalogue(call.language), "no_answer", voice=station.voice))


@router.post("/status")
def call_status(form: Form, runtime: Rt) -> Response:
    """Call status callback: a final status ends the call and starts the pipeline."""
    params = _call_params(form)
    status = (form.get("CallStatus") or "").strip()
    key = f"status:{params.call_sid}:{status}:{form.get('SequenceNumber', '')}"
    with runtime.db.session() as session:
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
                session, call, twilio_status=status, duration_s=_int(form.get("CallDuration"))
            )
        elif call is not None:
            call.twilio_status = status or call.twilio_status
    return _xml(twiml.empty())


@router.post("/recording-status")
def recording_status(form: Form, runtime: Rt, step: str = "reason") -> Response:
    """Recording status callback: the audio is ready to fetch, or there is none."""
    params = _call_params(form)
    recording_sid = (form.get("RecordingSid") or "").strip()
    status = (form.get("RecordingStatus") or "").strip()
    if not recording_sid:
        raise HTTPException(status_code=400, detail="RecordingSid missing")
    with runtime.db.session() as session:
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
            url=form.get("RecordingUrl") if status == "completed" else None,
            duration_s=_int(form.get("RecordingDuration")),
            prompt_key=step[:32],
        )
        if status in ("absent", "failed"):
            service.mark_recording_absent(session, rec, f"Twilio recording status: {status}")
    return _xml(twiml.empty())


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
