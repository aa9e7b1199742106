"""The webhooks in the OpenAPI description: the form fields Twilio sends, and every answer.

The webhooks read their form themselves (``endpoints.verified_form``: the signature is checked
before any field), so FastAPI cannot see the fields; they are described here, as typed dicts,
and given to each route as ``openapi_extra``. Twilio sends more fields than these (all signed,
the rest ignored); the ones described are checked at the edge, a malformed one answered 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, Field, TypeAdapter, WithJsonSchema
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict from Python 3.12

from voicebot.service import ACCOUNT_SID, CALL_SID, CALL_STATUSES, RECORDING_SID

TWIML = "application/xml"
FORM = "application/x-www-form-urlencoded"
RECORDING_STATUSES = frozenset({"in-progress", "completed", "absent", "failed"})


class Problem(BaseModel):
    """A refusal, as FastAPI answers one: what was wrong (never the caller's words)."""

    detail: str


def _matching(regex: re.Pattern[str], description: str) -> Any:
    return Field(pattern=f"^{regex.pattern}$", description=description)


def _one_of(values: Iterable[str]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": sorted(values)})


Number = Annotated[str, Field(max_length=32)]
Digits = Annotated[str, Field(pattern="^[0-9*#]*$", description="The keys pressed.")]
Count = Annotated[str, Field(pattern="^[0-9]+$")]
Url = Annotated[str, Field(max_length=500)]
Text = Annotated[str, Field(max_length=64)]
RecordingSid = Annotated[str, _matching(RECORDING_SID, "The recording.")]


class CallForm(TypedDict):
    """The fields of every voice webhook."""

    CallSid: Annotated[str, _matching(CALL_SID, "The call.")]
    AccountSid: Annotated[str, _matching(ACCOUNT_SID, "The Twilio account.")]
    From: Annotated[Number, Field(description="The caller's number.")]
    To: Annotated[Number, Field(description="The number called: the station's.")]
    Called: NotRequired[Annotated[Number, Field(description="The same as To.")]]


class GatherForm(CallForm):
    """``<Gather>``'s action."""

    Digits: NotRequired[Digits]  # absent when no key was pressed in time


class RecordedForm(CallForm):
    """``<Record>``'s action: the recording, when anything was said."""

    RecordingSid: NotRequired[RecordingSid]
    RecordingUrl: NotRequired[Url]
    RecordingDuration: NotRequired[Count]
    Digits: NotRequired[Digits]


class StatusForm(CallForm):
    """The call's status callback."""

    CallStatus: Annotated[str, _one_of(CALL_STATUSES)]
    CallDuration: NotRequired[Count]
    SequenceNumber: NotRequired[Count]
    Timestamp: NotRequired[Text]
    ErrorCode: NotRequired[Text]


class RecordingStatusForm(CallForm):
    """The recording's status callback."""

    RecordingSid: RecordingSid
    RecordingStatus: Annotated[str, _one_of(RECORDING_STATUSES)]
    RecordingUrl: NotRequired[Url]
    RecordingDuration: NotRequired[Count]
    RecordingChannels: NotRequired[Count]
    RecordingSource: NotRequired[Text]
    ErrorCode: NotRequired[Text]


def webhook(form: type[CallForm]) -> dict[str, Any]:
    """A webhook route's ``openapi_extra``: its form."""
    schema = TypeAdapter(form).json_schema()
    return {"requestBody": {"required": True, "content": {FORM: {"schema": schema}}}}


def refusal(description: str) -> dict[str, Any]:
    """A documented error answer: FastAPI's ``{"detail": ...}``."""
    return {"model": Problem, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The call's next step, in TwiML.",
        "content": {TWIML: {"schema": {"type": "string"}}},
    },
    400: refusal("A malformed form, or a field unlike what Twilio sends."),
    403: refusal("`X-Twilio-Signature` missing or wrong."),
    413: refusal("A body over `web.max_body_bytes`, refused before it is read."),
}
"""What every webhook can answer. A live call's webhook never answers 500: whatever fails,
the caller is put through to a nurse (``endpoints.LiveCallRoute``)."""

NO_STATION: dict[int | str, dict[str, Any]] = {
    404: refusal("No station has the number called (`To`).")
}
"""And the webhooks that belong to a call in progress, when its station cannot be found."""
