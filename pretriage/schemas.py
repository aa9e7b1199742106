"""The pretriage decision (``docs/pretriage-policy.md``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Urgency = Literal["emergency", "urgent", "non_urgent"]
Route = Literal["nurse_queue", "callback", "digital_path"]

URGENCY_RANK: dict[str, int] = {"non_urgent": 0, "urgent": 1, "emergency": 2}


class Reason(BaseModel):
    """One rule that fired, with the caller's words that fired it."""

    rule: str
    text: str
    evidence: list[str] = Field(default_factory=list)


class TriageDecision(BaseModel):
    urgency: Urgency
    route: Route
    digital_path: str | None = None
    reasons: list[Reason] = Field(default_factory=list)
    ruleset_version: str
    advise_112: bool = Field(default=False, description="tell the caller to call 112 if acute")
    sms_link: str | None = Field(default=None, description="the station's link for the path")
    uncertain: bool = Field(
        default=False,
        description="the matter was not understood well enough to trust a non-urgent route",
    )
    uncertain_reasons: list[Reason] = Field(
        default_factory=list,
        description="why: matter not recognised, misheard words, low recognition confidence, "
        "contradiction, words not understood, a sign the words only resemble",
    )
    confirm_sign: str | None = Field(
        default=None,
        description="an emergency sign the words point to but do not make certain: "
        "a call asks the caller to confirm it on the keypad",
    )
