"""The call as an explicit state machine: what the caller hears next, given what they pressed.

Pure: no database, no Twilio. Each webhook loads the call's :class:`Answers`, feeds the keypad
input to :func:`advance`, stores the answers back and renders the returned :class:`Step` as
TwiML (``twiml.py``). Keeping it pure makes every branch testable in microseconds and keeps the
webhooks fast.

Everywhere the caller can press 9 to hear the question again and 0 to join the nurse queue,
except where the question asks for a number of years or days (there 0 and 9 are answers).
A keypad question left unanswered is asked once more, then taken as "no answer" and the call
goes on: the case reaches a nurse whatever the caller manages to do.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pretriage.signs import default_signs

REPEAT_KEY = "9"
NURSE_KEY = "0"
MAX_FOLLOW_UPS = 3


class State(StrEnum):
    WELCOME = "welcome"  # greeting, AI and recording notice, 112 notice, language menu
    EMERGENCY = "emergency"  # keypad: any emergency sign?
    IDENTITY = "identity"  # keypad: identity code digits, or # to skip
    REASON = "reason"  # record the free answer
    ASSESS = "assess"  # transcribe + pretriage during the call (budgeted)
    ASK_WHO = "ask_who"  # keypad: 1 self, 2 child, 3 someone else
    ASK_CHILD_AGE = "ask_child_age"  # keypad: years, then #
    ASK_DURATION = "ask_duration"  # keypad: days, then #
    ASK_TEMPERATURE = "ask_temperature"  # keypad: e.g. 385 for 38.5, then #
    CONFIRM_SIGN = "confirm_sign"  # keypad: 1 yes, 2 no: a possible emergency sign, named
    URGENT_LINE = "urgent_line"  # closed and urgent: 1 connects to Päivystysapu 116 117
    OFFER_SMS = "offer_sms"  # 1: SMS link, 2: a nurse calls instead
    CONFIRM_CALLBACK = "confirm_callback"  # 1: this number, 2: another
    CALLBACK_NUMBER = "callback_number"  # keypad: the other number, then #
    FEEDBACK = "feedback"  # one optional question, 1-5
    DONE = "done"


COUNTING = frozenset({State.ASK_CHILD_AGE, State.ASK_DURATION})
"""Questions answered with a number of years or days, where 0 and 9 are answers."""

Outcome = Literal["emergency", "nurse_queue", "urgent_line", "digital_path", "callback"]
FEEDBACK_QUESTIONS = ("useful", "understandable", "recommend")


@dataclass
class Answers:
    """Everything the caller has given so far (stored with the call as JSON)."""

    language: str = "fi"
    emergency_key: bool | None = None
    identity_tries: int = 0
    identity_given: bool = False
    for_whom: Literal["self", "child", "other"] | None = None
    child_age: int | None = None
    duration_days: float | None = None
    temperature_c: float | None = None
    follow_ups: list[str] = field(default_factory=list)
    silent: dict[str, int] = field(default_factory=dict)
    outcome: Outcome | None = None
    wants_nurse: bool = False
    sms_accepted: bool | None = None
    callback_number: str | None = None
    feedback_question: str | None = None
    feedback_answer: int | None = None
    digital_path: str | None = None
    heard: str | None = None
    """The free answer as transcribed during the call (health data: never logged)."""
    heard_confidence: float | None = None
    assessed: bool = False
    sms_sid: str | None = None
    confirm_sign: str | None = None
    """The emergency sign the caller was asked to confirm (``pretriage/signs``)."""
    sign_confirmed: bool | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Answers:
        # A deep copy: mutating the loaded JSON in place would hide the change from the ORM.
        known = {
            k: v for k, v in copy.deepcopy(data or {}).items() if k in cls.__dataclass_fields__
        }
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(
            {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}
        )


@dataclass(frozen=True)
class Step:
    """What to do next on the line."""

    state: State
    say: tuple[str, ...] = ()
    """Catalogue keys to say, in order."""
    gather: Literal["digit", "digits"] | None = None
    """Wait for one key, or for digits ended by #."""
    record: bool = False
    transfer: Literal["priority", "normal"] | None = None
    hangup: bool = False
    redirect: State | None = None
    """Go on at once to this state's webhook (e.g. the budgeted assessment)."""
    dial_urgent_line: bool = False
    """Connect the caller to the station's after-hours urgent line (``<Dial>``)."""
    values: dict[str, str] = field(default_factory=dict)
    """Values for the catalogue's placeholders."""


@dataclass(frozen=True)
class Assessment:
    """What in-call pretriage made of the free answer (and the keypad answers)."""

    urgency: Literal["emergency", "urgent", "non_urgent"] | None
    """None: transcription was late or unsure; the caller is treated as needing a nurse."""
    route: Literal["nurse_queue", "callback", "digital_path"] | None
    missing: tuple[str, ...] = ()
    """Follow-ups that could change the decision, most important first: ``who``,
    ``child_age``, ``duration``, ``temperature``."""
    digital_path: str | None = None
    confirm_sign: str | None = None
    """An emergency sign the words point to but do not make certain: ask the caller."""


LANGUAGE_KEYS = {"1": "fi", "2": "sv", "3": "en"}
WHO_KEYS: dict[str, Literal["self", "child", "other"]] = {"1": "self", "2": "child", "3": "other"}


def prompt_for(state: State, answers: Answers, *, closed: bool = False) -> Step:
    """The step that asks ``state``'s question (used on entry and when 9 is pressed)."""
    if state is State.WELCOME:
        keys = ["greeting", "ai_disclosure", "emergency_notice"]
        if closed:
            keys.append("closed_notice")
        return Step(state, (*keys, "language_menu"), gather="digit")
    if state is State.EMERGENCY:
        return Step(state, ("ask_emergency",), gather="digit")
    if state is State.IDENTITY:
        key = "ask_identity" if answers.identity_tries == 0 else "identity_again"
        return Step(state, (key,), gather="digits")
    if state is State.REASON:
        return Step(state, ("ask_reason",), record=True)
    if state is State.ASK_WHO:
        return Step(state, ("ask_who",), gather="digit")
    if state is State.ASK_CHILD_AGE:
        return Step(state, ("ask_child_age",), gather="digits")
    if state is State.ASK_DURATION:
        return Step(state, ("ask_duration",), gather="digits")
    if state is State.ASK_TEMPERATURE:
        return Step(state, ("ask_temperature",), gather="digits")
    if state is State.OFFER_SMS:
        return Step(state, ("offer_sms",), gather="digit")
    if state is State.CONFIRM_CALLBACK:
        return Step(state, ("callback_window", "confirm_number"), gather="digit")
    if state is State.CALLBACK_NUMBER:
        return Step(state, ("ask_number",), gather="digits")
    if state is State.FEEDBACK:
        return Step(state, (f"feedback_{answers.feedback_question or 'useful'}",), gather="digit")
    if state is State.CONFIRM_SIGN:
        sign = default_signs().signs.get(answers.confirm_sign or "")
        question = sign.text("ask", answers.language) if sign else ""
        return Step(state, ("confirm_sign",), gather="digit", values={"question": question})
    if state is State.URGENT_LINE:
        return Step(state, ("urgent_closed",), gather="digit")
    if state is State.ASSESS:
        return Step(state, ("one_moment",), redirect=State.ASSESS)
    return Step(State.DONE, ("goodbye",), hangup=True)


def advance(
    state: State,
    digits: str | None,
    answers: Answers,
    *,
    closed: bool = False,
    feedback_question: str = "useful",
) -> Step:
    """The caller answered ``state``'s question with ``digits`` (None: no answer in time)."""
    digits = (digits or "").strip()
    counting = state in COUNTING
    if digits == REPEAT_KEY and not counting:
        return prompt_for(state, answers, closed=closed)
    if digits == NURSE_KEY and not counting and state not in (State.FEEDBACK, State.DONE):
        answers.wants_nurse = True
        return _to_nurse(answers, closed=closed, priority=False)
    if not digits and state not in (State.IDENTITY, State.FEEDBACK):
        answers.silent[state] = answers.silent.get(state, 0) + 1
        if answers.silent[state] == 1:
            return prompt_for(state, answers, closed=closed)

    if state is State.WELCOME:
        answers.language = LANGUAGE_KEYS.get(digits, answers.language)
        return prompt_for(State.EMERGENCY, answers)
    if state is State.EMERGENCY:
        if digits == "1":
            answers.emergency_key = True
            return _emergency(answers, closed=closed)
        answers.emergency_key = False if digits == "2" else None
        return prompt_for(State.IDENTITY, answers)
    if state is State.IDENTITY:
        # The webhook validates the digits (identity.py) and calls identity_result().
        return prompt_for(State.REASON, answers)
    if state is State.ASK_WHO:
        answers.for_whom = WHO_KEYS.get(digits)
        return _reassess()
    if state is State.ASK_CHILD_AGE:
        answers.child_age = int(digits) if digits.isdigit() and int(digits) < 18 else None
        return _reassess()
    if state is State.ASK_DURATION:
        answers.duration_days = float(digits) if digits.isdigit() and int(digits) < 400 else None
        return _reassess()
    if state is State.ASK_TEMPERATURE:
        answers.temperature_c = keyed_temperature(digits)
        return _reassess()
    if state is State.OFFER_SMS:
        if digits == "2":
            answers.sms_accepted = False
            answers.outcome = "callback"
            return prompt_for(State.CONFIRM_CALLBACK, answers)
        answers.sms_accepted = True
        return _closing(answers, "sms_sent", feedback_question)
    if state is State.CONFIRM_CALLBACK:
        if digits == "2":
            return prompt_for(State.CALLBACK_NUMBER, answers)
        return _closing(answers, "callback_confirmed", feedback_question)
    if state is State.CALLBACK_NUMBER:
        number = keyed_number(digits)
        if number is None and answers.silent.get(State.CALLBACK_NUMBER, 0) < 1:
            answers.silent[State.CALLBACK_NUMBER] = 1
            return Step(State.CALLBACK_NUMBER, ("number_again",), gather="digits")
        answers.callback_number = number
        return _closing(answers, "callback_confirmed", feedback_question)
    if state is State.CONFIRM_SIGN:
        answers.sign_confirmed = digits == "1"
        if answers.sign_confirmed:
            answers.emergency_key = True  # the caller confirmed an emergency sign
            return _emergency(answers, closed=closed)
        return _reassess()  # no: the case keeps what the words alone give
    if state is State.URGENT_LINE:
        if digits == "1":
            return Step(State.DONE, ("connecting_urgent_line",), dial_urgent_line=True)
        return Step(State.DONE, ("call_urgent_line",), hangup=True)
    if state is State.FEEDBACK:
        if digits.isdigit() and 1 <= int(digits) <= 5:
            answers.feedback_answer = int(digits)
            return Step(State.DONE, ("thanks_goodbye",), hangup=True)
        return Step(State.DONE, ("goodbye",), hangup=True)
    return Step(State.DONE, ("goodbye",), hangup=True)


def identity_result(answers: Answers, ok: bool | None) -> Step:
    """After the identity digits: ``ok`` None when skipped, False when invalid."""
    if ok is False and answers.identity_tries == 0:
        answers.identity_tries = 1
        return prompt_for(State.IDENTITY, answers)
    answers.identity_given = bool(ok)
    return prompt_for(State.REASON, answers)


def after_recording(answers: Answers, *, recorded: bool) -> Step:
    """The free answer is recorded (or the caller said nothing): assess it during the call."""
    if not recorded:
        return Step(State.ASSESS, ("no_answer_heard",), redirect=State.ASSESS)
    return prompt_for(State.ASSESS, answers)


def decide_next(
    answers: Answers, assessment: Assessment, *, closed: bool, feedback_question: str
) -> Step:
    """After in-call pretriage: the emergency, a follow-up question, or the outcome."""
    if assessment.urgency == "emergency":
        return _emergency(answers, closed=closed)
    if (
        assessment.confirm_sign
        and answers.confirm_sign is None
        and len(answers.follow_ups) < MAX_FOLLOW_UPS
    ):
        # Words that point to an emergency sign without making it certain (chest pain whose
        # "crushing" the recogniser garbled): one yes/no question naming it.
        answers.confirm_sign = assessment.confirm_sign
        answers.follow_ups.append("confirm_sign")
        return prompt_for(State.CONFIRM_SIGN, answers)
    if assessment.urgency is None or assessment.urgency == "urgent":
        # Late or unsure transcription, or an urgent sign: a nurse, never "non-urgent".
        return _to_nurse(answers, closed=closed, priority=assessment.urgency == "urgent")
    for question in assessment.missing:
        if len(answers.follow_ups) >= MAX_FOLLOW_UPS:
            break
        if question in answers.follow_ups:
            continue
        answers.follow_ups.append(question)
        state = {
            "who": State.ASK_WHO,
            "child_age": State.ASK_CHILD_AGE,
            "duration": State.ASK_DURATION,
            "temperature": State.ASK_TEMPERATURE,
        }[question]
        return prompt_for(state, answers)
    if assessment.route == "nurse_queue":
        return _to_nurse(answers, closed=closed, priority=False)
    if assessment.route == "digital_path" and answers.sms_accepted is None:
        answers.outcome = "digital_path"
        return prompt_for(State.OFFER_SMS, answers)
    answers.outcome = "callback"
    return prompt_for(State.CONFIRM_CALLBACK, answers)


def _reassess() -> Step:
    return Step(State.ASSESS, (), redirect=State.ASSESS)


def _emergency(answers: Answers, *, closed: bool) -> Step:
    answers.outcome = "emergency"
    if closed:
        # Nobody is at the station to take the call: 112 is the only safe advice.
        return Step(State.DONE, ("emergency_112", "emergency_closed"), hangup=True)
    return Step(State.DONE, ("emergency_112", "connecting_priority"), transfer="priority")


def _to_nurse(answers: Answers, *, closed: bool, priority: bool) -> Step:
    if closed and priority:
        # Urgent means a professional now: Päivystysapu 116 117, never tomorrow's callback.
        # The case still reaches the morning's worklist.
        answers.outcome = "urgent_line"
        return prompt_for(State.URGENT_LINE, answers)
    if closed:
        answers.outcome = "callback"
        return Step(State.CONFIRM_CALLBACK, ("nurses_closed", "callback_window", "confirm_number"),
                    gather="digit")  # fmt: skip
    answers.outcome = "nurse_queue"
    key = "connecting_priority" if priority else "connecting"
    return Step(State.DONE, (key,), transfer="priority" if priority else "normal")


def _closing(answers: Answers, key: str, feedback_question: str) -> Step:
    answers.feedback_question = feedback_question
    return Step(State.FEEDBACK, (key, f"feedback_{feedback_question}"), gather="digit")


def keyed_temperature(digits: str) -> float | None:
    """ "385" → 38.5, "39" → 39.0, "3850"? no: only a plausible body temperature counts."""
    if not digits.isdigit():
        return None
    value = int(digits)
    for t in (value, value / 10, value / 100):
        if 34.0 <= t <= 43.0:
            return round(float(t), 1)
    return None


def keyed_number(digits: str) -> str | None:
    """A Finnish phone number keyed in ("0401234567" → "+358401234567"), or None."""
    if not digits.isdigit() or not 6 <= len(digits) <= 15:
        return None
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0"):
        return "+358" + digits[1:]
    if digits.startswith("358"):
        return "+" + digits
    return None
