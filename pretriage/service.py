"""Pretriage against the database: station settings, callback windows, nurse overrides, and how
often nurses agreed with pretriage.

Pretriage's own decision and every nurse decision after it are separate rows
(``TriageDecision.source``), so neither is ever overwritten and the dashboard can count how
often the professionals agreed (like Klinik's professional re-rating).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from models import AuditEvent, Call, Callback, Station, TriageDecision, utcnow
from pretriage.callback_window import (
    CallbackLoad,
    CallbackWindow,
    OpeningHours,
    OpeningHoursError,
    estimate_window,
)
from pretriage.ruleset import Ruleset, default_ruleset
from pretriage.schemas import URGENCY_RANK, Route, Urgency
from pretriage.schemas import TriageDecision as Decision

log = logging.getLogger(__name__)

PRETRIAGE = "pretriage"
NURSE = "nurse"


class StationConfigError(ValueError):
    """A station's pretriage settings are wrong; the message names the station and the field."""


class PathSetting(BaseModel):
    enabled: bool = True
    sms_link: str | None = None

    @field_validator("sms_link")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("an SMS link must be an https:// address")
        return v


def station_paths(station: Station, ruleset: Ruleset | None = None) -> dict[str, str | None]:
    """The digital paths the station offers, with their links. A path that is switched off or
    has no link to send is left out, so pretriage never routes a caller to it."""
    settings = check_station(station, ruleset)
    return {pid: s.sms_link for pid, s in settings.items() if s.enabled and s.sms_link}


def offered_paths(station: Station) -> dict[str, str | None]:
    """:func:`station_paths` for a live call: settings are checked at start-up, and if a
    mistake slips through anyway nobody is offered a digital path (they get a nurse)."""
    try:
        return station_paths(station)
    except StationConfigError as exc:
        log.warning("digital paths off for this call: %s", exc)
        return {}


def check_station(station: Station, ruleset: Ruleset | None = None) -> dict[str, PathSetting]:
    """Validate a station's pretriage settings (at start-up, and when they are changed)."""
    rs = ruleset or default_ruleset()
    raw = station.digital_paths or {}
    if not isinstance(raw, dict):
        raise StationConfigError(f"station {station.id}: digital_paths must be a mapping")
    out: dict[str, PathSetting] = {}
    for pid, value in raw.items():
        if pid not in rs.digital_paths:
            known = ", ".join(rs.digital_paths)
            raise StationConfigError(
                f"station {station.id}: digital path {pid!r} is not in ruleset {rs.version} "
                f"(known: {known})"
            )
        try:
            out[pid] = PathSetting.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]["msg"]
            raise StationConfigError(f"station {station.id}: digital path {pid}: {first}") from exc
    try:
        OpeningHours.parse(station.opening_hours)
    except OpeningHoursError as exc:
        raise StationConfigError(f"station {station.id}: {exc}") from exc
    nurses, minutes = station.callback_nurses, station.callback_handling_min
    if (nurses is not None and nurses < 1) or (minutes is not None and minutes <= 0):
        raise StationConfigError(
            f"station {station.id}: callback_nurses must be ≥ 1 and callback_handling_min > 0"
        )
    return out


# -- callback window ---------------------------------------------------------------------------


def estimate_callback(
    session: Session, station: Station, now: datetime | None = None, *, call_id: str | None = None
) -> CallbackWindow:
    """The window for a new callback, behind the station's open callbacks (not this call's)."""
    query = select(func.count()).where(Callback.station_id == station.id, Callback.state == "open")
    if call_id is not None:
        query = query.where(Callback.call_id != call_id)
    ahead = int(session.scalar(query) or 0)
    return estimate_window(
        now or utcnow(),
        station.timezone,
        OpeningHours.parse(station.opening_hours),
        CallbackLoad(ahead, station.callback_nurses, station.callback_handling_min),
    )


def ensure_callback(session: Session, call: Call, now: datetime | None = None) -> Callback:
    """The call's one callback, with its window; created once, never duplicated."""
    cb = session.scalar(select(Callback).where(Callback.call_id == call.id))
    if cb is None:
        cb = Callback(
            call_id=call.id,
            station_id=call.station_id,
            phone_number=call.from_number,
            state="open",
        )
        session.add(cb)
    if cb.window_start is None and cb.state == "open":
        station = session.get(Station, call.station_id)
        if station is not None:
            window = estimate_callback(session, station, now, call_id=call.id)
            cb.window_start, cb.window_end = window.start, window.end
    return cb


# -- the case after the call ---------------------------------------------------------------------


TOLD_A_NURSE = frozenset({"emergency", "nurse_queue", "urgent_line"})
"""What the voicebot may have told the caller that puts them through to a professional now
(``urgent_line``: after hours, to Päivystysapu 116 117)."""


def outcome_after_call(decision: Decision, told: str | None) -> tuple[Urgency, Route]:
    """The case's urgency and route from pretriage's decision and what the caller was told.

    The words heard after the call can add urgency but never take away what the call already
    gave the caller: someone put through to a nurse stays in the nurse queue, and someone told
    to call 112 stays an emergency.
    """
    urgency, route = decision.urgency, decision.route
    if told in TOLD_A_NURSE:
        route = "nurse_queue"
        if told == "emergency":
            urgency = "emergency"
    return urgency, route


def settle_case(
    session: Session, call: Call, decision: Decision, *, told: str | None, now: datetime
) -> None:
    """Put pretriage's decision on the case (unless a nurse has overridden it) and open the
    callback a callback route needs. Pretriage's own row is kept apart from any nurse's."""
    auto = session.scalar(
        select(TriageDecision).where(
            TriageDecision.call_id == call.id, TriageDecision.source == PRETRIAGE
        )
    )
    if auto is None:
        auto = TriageDecision(call_id=call.id, source=PRETRIAGE)
        session.add(auto)
    auto.urgency = decision.urgency
    auto.route = decision.route
    auto.digital_path = decision.digital_path
    auto.reasons = [r.model_dump(mode="json") for r in decision.reasons]
    auto.uncertain = decision.uncertain
    auto.uncertain_reasons = [r.model_dump(mode="json") for r in decision.uncertain_reasons]
    auto.ruleset_version = decision.ruleset_version

    overridden = session.scalar(
        select(TriageDecision.id).where(
            TriageDecision.call_id == call.id, TriageDecision.source != PRETRIAGE
        )
    )
    if overridden is None:
        call.urgency, call.route = outcome_after_call(decision, told)
        call.urgency_rank = URGENCY_RANK[call.urgency]
        call.uncertain = decision.uncertain
    if call.route == "callback" or (decision.route == "callback" and overridden is None):
        ensure_callback(session, call, now)


def fall_back_to_callback(session: Session, call: Call, now: datetime | None = None) -> None:
    """Whatever failed (no SMS could be sent, the words could not be analysed), a nurse calls
    the caller back: the case is never left without a route."""
    ensure_callback(session, call, now)
    call.route = "callback"
    call.urgency_rank = max(call.urgency_rank, 0)


# -- nurse override ------------------------------------------------------------------------------


class Override(BaseModel):
    """A nurse's decision on a case: urgency and route, and why."""

    urgency: Urgency
    route: Route
    digital_path: str | None = None
    reason: str = Field(min_length=3, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _stripped(cls, v: str) -> str:
        v = v.strip()
        if len(v) < 3:
            raise ValueError("say why, in a few words")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Override:
        if self.route == "digital_path":
            if self.urgency != "non_urgent":
                raise ValueError("an urgent case cannot go to a digital path")
            if not self.digital_path:
                raise ValueError("name the digital path")
        elif self.digital_path is not None:
            raise ValueError("a digital path only goes with the digital_path route")
        return self


def override_triage(
    session: Session,
    call: Call,
    user_id: str,
    change: Override,
    ruleset: Ruleset | None = None,
) -> TriageDecision:
    """Record a nurse's urgency and route; pretriage's own decision stays as it was."""
    rs = ruleset or default_ruleset()
    if change.digital_path is not None and change.digital_path not in rs.digital_paths:
        raise ValueError(f"unknown digital path {change.digital_path!r}")
    before = {"urgency": call.urgency, "route": call.route}
    decision = TriageDecision(
        call_id=call.id,
        source=NURSE,
        urgency=change.urgency,
        route=change.route,
        digital_path=change.digital_path,
        reasons=[{"rule": "nurse-override", "text": change.reason, "evidence": []}],
        ruleset_version=rs.version,
        decided_by=user_id,
        comment=change.reason,
    )
    session.add(decision)
    call.urgency = change.urgency
    call.urgency_rank = URGENCY_RANK[change.urgency]
    call.route = change.route
    call.uncertain = False  # a nurse has assessed it
    if change.route == "callback":
        ensure_callback(session, call)
    # An open callback stays open whatever the new route: the caller has hung up and still
    # waits for a nurse; it leaves the worklist only when a nurse marks it done.
    session.add(
        AuditEvent(
            user_id=user_id,
            action="override_triage",
            object_type="call",
            object_id=call.id,
            station_id=call.station_id,
            # urgency and route only: the nurse's words may hold health data
            detail={"from": before, "to": {"urgency": change.urgency, "route": change.route}},
        )
    )
    session.flush()
    return decision


# -- agreement -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """How often nurses kept pretriage's decision, among the cases a nurse handled."""

    assessed: int = 0
    agreed: int = 0
    raised: int = 0
    lowered: int = 0
    rerouted: int = 0

    @property
    def rate(self) -> float | None:
        return round(self.agreed / self.assessed, 3) if self.assessed else None

    def __add__(self, other: Agreement) -> Agreement:
        """Both counts together (of different cases: stations, or kinds of handling)."""
        return Agreement(
            self.assessed + other.assessed,
            self.agreed + other.agreed,
            self.raised + other.raised,
            self.lowered + other.lowered,
            self.rerouted + other.rerouted,
        )


def agreement(
    session: Session, station_ids: Iterable[str], since: datetime, until: datetime
) -> Agreement:
    """Cases started in [since, until) that a nurse handled (overrode, or completed the
    callback); a case counts as agreed when the nurse's last decision kept urgency and route."""
    return sum(agreement_by_station(session, station_ids, since, until).values(), Agreement())


def agreement_by_station(
    session: Session, station_ids: Iterable[str], since: datetime, until: datetime
) -> dict[str, Agreement]:
    """:func:`agreement` of each station apart, read at once (the region's stations side by
    side); a station without handled cases is left out.

    Most handled cases are callbacks a nurse completed without deciding anything else: by
    :func:`count_agreement`'s rule each of them, if pretriage decided on it, is assessed and
    agreed, so the database counts them. Only the cases with a nurse's decision are read, and
    counted decision by decision.
    """
    # Each question is asked of each call of the period (EXISTS, by the indexed call id), so
    # the cost follows the period, not the years of history in the tables; and the answers
    # are counts and a few rows, not a row for every decision of a busy month.
    db = session.connection()
    in_period = and_(
        Call.station_id.in_(list(station_ids)), Call.started_at >= since, Call.started_at < until
    )
    nurse = aliased(TriageDecision)
    nurse_decided = (
        select(nurse.id).where(nurse.call_id == Call.id, nurse.source != PRETRIAGE).exists()
    )
    pretriaged = (
        select(TriageDecision.id)
        .where(TriageDecision.call_id == Call.id, TriageDecision.source == PRETRIAGE)
        .exists()
    )
    called_back = (
        select(Callback.id).where(Callback.call_id == Call.id, Callback.state == "done").exists()
    )
    out: dict[str, Agreement] = {}
    kept = db.execute(
        select(Call.station_id, func.count())
        .where(in_period, called_back, pretriaged, ~nurse_decided)
        .group_by(Call.station_id)
    )
    for station_id, calls in kept:
        out[station_id] = Agreement(assessed=calls, agreed=calls)
    decided: dict[str, list[tuple[str, str, str, str]]] = {}
    rows = db.execute(
        select(Call.station_id, TriageDecision.call_id, TriageDecision.source,
               TriageDecision.urgency, TriageDecision.route)
        .join(TriageDecision, TriageDecision.call_id == Call.id)
        .where(in_period, nurse_decided)
        .order_by(TriageDecision.created_at)
    )  # fmt: skip
    for station_id, call_id, source, urgency, route in rows:
        decided.setdefault(station_id, []).append((call_id, source, urgency, route))
    for station_id, decisions in decided.items():
        out[station_id] = out.get(station_id, Agreement()) + count_agreement(decisions)
    return out


def count_agreement(rows: Iterable[tuple[str, str, str, str]]) -> Agreement:
    """The agreement among decisions ``(call_id, source, urgency, route)`` in the order they
    were made (the nurse's last word counts)."""
    auto: dict[str, tuple[str, str]] = {}
    nurse: dict[str, tuple[str, str]] = {}
    for call_id, source, urgency, route in rows:
        (auto if source == PRETRIAGE else nurse)[call_id] = (urgency, route)
    assessed = agreed = raised = lowered = rerouted = 0
    for call_id, (urgency, route) in auto.items():
        assessed += 1
        n_urgency, n_route = nurse.get(call_id, (urgency, route))
        if (n_urgency, n_route) == (urgency, route):
            agreed += 1
        elif URGENCY_RANK[n_urgency] > URGENCY_RANK[urgency]:
            raised += 1
        elif URGENCY_RANK[n_urgency] < URGENCY_RANK[urgency]:
            lowered += 1
        else:
            rerouted += 1
    return Agreement(assessed, agreed, raised, lowered, rerouted)
