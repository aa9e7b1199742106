"""The nurse-facing summary (``docs/summary-schema.md``) and what is known of the call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Request = Literal[
    "symptom", "prescription_renewal", "lab_results", "appointment", "certificate", "other"
]
ForWhom = Literal["self", "child", "other"]
Sex = Literal["female", "male"]


class Evidence(BaseModel):
    """The transcript words a fact came from: ``text == transcript[start:end]``."""

    text: str
    start: int
    end: int


class Symptom(BaseModel):
    icpc2: str
    label: str
    negated: bool = False
    evidence: Evidence
    modifiers: list[str] = Field(
        default_factory=list, description="how the caller described it: severe, sudden, ..."
    )
    fuzzy: bool = Field(
        default=False, description="matched a word the recogniser probably misheard"
    )
    modifier_evidence: dict[str, Evidence] = Field(
        default_factory=dict, description="the words behind each modifier"
    )


class Finding(BaseModel):
    """Something the caller said that matters for pretriage (a sign, a wish, a circumstance)."""

    id: str
    label: str
    negated: bool = False
    evidence: Evidence


class Fact(BaseModel):
    """A named value with the words it came from (a medicine, a condition, an allergy)."""

    name: str
    categories: list[str] = Field(default_factory=list)
    evidence: Evidence


class Summary(BaseModel):
    language: str = "fi"
    for_whom: ForWhom = "self"
    age: int | None = None
    sex: Sex | None = None
    request: Request = "other"
    reason: str = ""
    symptoms: list[Symptom] = Field(default_factory=list)
    negated_symptoms: list[Symptom] = Field(default_factory=list)
    duration_days: float | None = None
    temperature_c: float | None = None
    medications: list[str] = Field(default_factory=list)
    allergies: list[str] = Field(default_factory=list)
    conditions: list[str] = Field(default_factory=list)
    pregnant: bool | None = None
    red_flags: list[str] = Field(default_factory=list)
    note: str = ""
    schema_version: int = 1
    # Beyond the contract: what the facts above rest on, for the nurse and for pretriage.
    age_months: int | None = None
    findings: list[Finding] = Field(default_factory=list)
    medication_facts: list[Fact] = Field(default_factory=list)
    condition_facts: list[Fact] = Field(default_factory=list)
    allergy_facts: list[Fact] = Field(default_factory=list)
    evidence: dict[str, Evidence] = Field(
        default_factory=dict,
        description=(
            "words behind duration_days, temperature_c, age, sex, for_whom, pregnant, request"
        ),
    )

    def has(self, code: str) -> bool:
        return any(s.icpc2 == code for s in self.symptoms)

    def finding(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id and not f.negated), None)


class CallContext(BaseModel):
    """What is known about the patient apart from the words (keyed-in identity code etc.)."""

    age: int | None = None
    sex: Sex | None = None
    language: str | None = None
    for_whom: ForWhom | None = Field(default=None, description="the caller's keypad answer")
    emergency_key: bool = Field(
        default=False, description="the caller pressed the key for an emergency sign"
    )
    wants_nurse: bool = Field(default=False, description="the caller pressed 0 for a nurse")
