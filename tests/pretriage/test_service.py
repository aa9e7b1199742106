"""Pretriage against the database: station paths, callback windows, nurse overrides, agreement.

Runs on SQLite and PostgreSQL (the ``runtime`` fixture), with the real pipeline step that
turns a finished call into a case.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esitieto.app import prepare
from esitieto.runtime import Runtime
from models import (
    AuditEvent,
    Call,
    Callback,
    CallState,
    Recording,
    RecordingState,
    Station,
    Transcript,
    TriageDecision,
    User,
)
from pretriage.service import (
    Override,
    StationConfigError,
    agreement,
    check_station,
    ensure_callback,
    override_triage,
    station_paths,
)
from voicebot.tasks import Pipeline

HELSINKI = ZoneInfo("Europe/Helsinki")
# A Tuesday morning in Helsinki, inside the default opening hours.
TUESDAY_9 = datetime(2026, 11, 24, 9, 0, tzinfo=HELSINKI).astimezone(UTC)
UTI_WORDS = (
    "Minulla on virtsatieinfektion oireita, pissatessa kirvelee ja pitää käydä vessassa "
    "koko ajan, kaksi päivää. Ei kuumetta eikä selkäkipua. Olen 34-vuotias nainen."
)


def station(**settings: object) -> Station:
    return Station(
        id="st-" + uuid.uuid4().hex[:8],
        name="Testiasema",
        phone_number="+3589" + uuid.uuid4().hex[:8],
        language="fi",
        **settings,
    )


def add_call(session: Session, station_id: str, *, started_at: datetime | None = None) -> Call:
    call = Call(
        station_id=station_id,
        call_sid="CA" + uuid.uuid4().hex,
        from_number="+358401234567",
        to_number="+358900000000",
        state=CallState.ENDED,
        started_at=started_at or TUESDAY_9,
    )
    session.add(call)
    session.flush()
    return call


def add_transcript(session: Session, call: Call, text: str) -> None:
    rec = Recording(
        call_id=call.id,
        recording_sid="RE" + uuid.uuid4().hex,
        sequence=1,
        prompt_key="reason",
        state=RecordingState.TRANSCRIBED,
    )
    session.add(rec)
    session.flush()
    session.add(
        Transcript(
            recording_id=rec.id,
            call_id=call.id,
            engine="test",
            model="synthetic",
            language="fi",
            text=text,
            confidence=0.9,
        )
    )


def nurse(session: Session) -> User:
    user = User(username="n-" + uuid.uuid4().hex[:8], display_name="Hoitaja", password_hash="x")
    session.add(user)
    session.flush()
    return user


# -- station settings ------------------------------------------------------------------------------


def test_a_path_is_offered_only_when_on_and_with_a_link() -> None:
    st = station(
        digital_paths={
            "uti": {"enabled": True, "sms_link": "https://digi.example.fi/uti"},
            "lab-results": {"enabled": False, "sms_link": "https://digi.example.fi/lab"},
            "appointment": {"enabled": True},
        }
    )
    assert station_paths(st) == {"uti": "https://digi.example.fi/uti"}
    assert station_paths(station()) == {}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"digital_paths": {"acne": {"sms_link": "https://x.fi"}}}, "'acne' is not in ruleset"),
        ({"digital_paths": {"uti": {"sms_link": "http://x.fi"}}}, "https://"),
        ({"digital_paths": ["uti"]}, "must be a mapping"),
        ({"opening_hours": {"mon-fri": "8-16"}}, "opening hours"),
        ({"opening_hours": {"funday": "08:00-16:00"}}, "unknown day"),
        ({"callback_nurses": 0}, "callback_nurses"),
    ],
)
def test_wrong_station_settings_name_the_station_and_the_field(
    settings: dict[str, object], message: str
) -> None:
    st = station(**settings)
    with pytest.raises(StationConfigError, match=message) as err:
        check_station(st)
    assert st.id in str(err.value)


def test_start_up_refuses_a_station_with_wrong_settings(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        s.add(station(digital_paths={"uti": {"sms_link": "ftp://x"}}))
    with pytest.raises(StationConfigError, match="https://"):
        prepare(runtime)


def test_the_demo_station_offers_every_path_with_a_link(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        demo = s.get(Station, runtime.settings.demo.station_id)
        assert demo is not None
        paths = station_paths(demo)
    assert "uti" in paths and all(link.startswith("https://") for link in paths.values() if link)


# -- the pipeline honours the station --------------------------------------------------------------


def finalize(runtime: Runtime, station_row: Station, text: str) -> str:
    with runtime.db.session() as s:
        s.add(station_row)
        s.flush()
        call = add_call(s, station_row.id, started_at=datetime.now(UTC))
        add_transcript(s, call, text)
        call_id = call.id
    Pipeline(runtime.voicebot).finalize_call(call_id)
    return call_id


def test_the_same_words_go_digital_only_where_the_station_offers_the_path(
    runtime: Runtime,
) -> None:
    link = "https://digi.example.fi/uti"
    offered = finalize(runtime, station(digital_paths={"uti": {"sms_link": link}}), UTI_WORDS)
    not_offered = finalize(runtime, station(), UTI_WORDS)
    with runtime.db.session() as s:
        a = s.scalar(select(TriageDecision).where(TriageDecision.call_id == offered))
        b = s.scalar(select(TriageDecision).where(TriageDecision.call_id == not_offered))
        assert a is not None and b is not None
        assert (a.route, a.digital_path) == ("digital_path", "uti")
        assert b.route == "callback" and b.digital_path is None
        assert a.urgency == b.urgency == "non_urgent"
        cb = s.scalar(select(Callback).where(Callback.call_id == not_offered))
        assert cb is not None and cb.window_start is not None and cb.window_end is not None
        assert s.scalar(select(Callback).where(Callback.call_id == offered)) is None


def test_a_swedish_station_gets_a_swedish_note_with_its_own_headings(runtime: Runtime) -> None:
    st = station(note_language="sv", note_headings={"reason": "Kontaktorsak"})
    call_id = finalize(runtime, st, "Jag har haft feber och hosta i tre dagar.")
    with runtime.db.session() as s:
        from models import Summary as SummaryRow

        row = s.scalar(select(SummaryRow).where(SummaryRow.call_id == call_id))
        assert row is not None
        assert "Kontaktorsak:" in row.note and "Varaktighet" in row.note
        assert row.generator == "deterministic"


# -- callback window -------------------------------------------------------------------------------


def test_a_callback_is_made_once_with_a_window_inside_opening_hours(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        st = station(callback_nurses=1, callback_handling_min=30.0)
        s.add(st)
        s.flush()
        calls = [add_call(s, st.id) for _ in range(3)]
        windows = []
        for call in calls:
            first = ensure_callback(s, call, now=TUESDAY_9)
            again = ensure_callback(s, call, now=TUESDAY_9 + timedelta(hours=3))
            assert first is again
            s.flush()
            windows.append((first.window_start, first.window_end))
        count = s.scalar(
            select(func.count()).select_from(Callback).where(Callback.station_id == st.id)
        )
    assert count == 3
    for start, end in windows:
        assert start is not None and end is not None
        local_start, local_end = start.astimezone(HELSINKI), end.astimezone(HELSINKI)
        assert local_start.hour >= 8 and local_end.hour * 60 + local_end.minute <= 16 * 60
        assert start >= TUESDAY_9
    # one nurse, half an hour each: the queue pushes each later caller's window later
    starts = [w[0] for w in windows if w[0] is not None]
    assert starts == sorted(starts) and starts[0] != starts[-1]


def test_a_callback_asked_for_after_closing_is_promised_for_the_next_opening(
    runtime: Runtime,
) -> None:
    friday_evening = datetime(2026, 11, 27, 19, 0, tzinfo=HELSINKI).astimezone(UTC)
    with runtime.db.session() as s:
        st = station(opening_hours={"mon-fri": "08:00-16:00"})
        s.add(st)
        s.flush()
        cb = ensure_callback(s, add_call(s, st.id), now=friday_evening)
        assert cb.window_start is not None
        local = cb.window_start.astimezone(HELSINKI)
    assert (local.weekday(), local.hour) == (0, 8)  # Monday at opening


# -- nurse override --------------------------------------------------------------------------------


def triaged_call(s: Session, st: Station, urgency: str, route: str) -> Call:
    call = add_call(s, st.id)
    call.urgency, call.route = urgency, route
    s.add(
        TriageDecision(
            call_id=call.id,
            source="pretriage",
            urgency=urgency,
            route=route,
            ruleset_version="test",
        )
    )
    if route == "callback":
        ensure_callback(s, call, now=TUESDAY_9)
    s.flush()
    return call


def test_a_nurse_override_keeps_both_decisions_and_audits_without_health_text(
    runtime: Runtime,
) -> None:
    why = "Soitin takaisin: rintakipua rasituksessa"
    with runtime.db.session() as s:
        st = station()
        s.add(st)
        s.flush()
        call = triaged_call(s, st, "non_urgent", "callback")
        user = nurse(s)
        override_triage(
            s, call, user.id, Override(urgency="urgent", route="nurse_queue", reason=why)
        )
        rows = s.scalars(
            select(TriageDecision)
            .where(TriageDecision.call_id == call.id)
            .order_by(TriageDecision.created_at)
        ).all()
        assert [(r.source, r.urgency, r.route) for r in rows] == [
            ("pretriage", "non_urgent", "callback"),
            ("nurse", "urgent", "nurse_queue"),
        ]
        assert rows[1].decided_by == user.id and rows[1].comment == why
        assert (call.urgency, call.route, call.urgency_rank) == ("urgent", "nurse_queue", 1)
        # rerouted or raised, the caller still waits for a nurse: the callback stays open
        cb = s.scalar(select(Callback).where(Callback.call_id == call.id))
        assert cb is not None and cb.state == "open"
        audit = s.scalar(select(AuditEvent).where(AuditEvent.object_id == call.id))
        assert audit is not None and audit.action == "override_triage"
        assert "rintakipu" not in str(audit.detail)
        assert audit.detail["to"] == {"urgency": "urgent", "route": "nurse_queue"}


def test_rerouting_to_a_callback_creates_one_with_a_window(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        st = station()
        s.add(st)
        s.flush()
        call = triaged_call(s, st, "non_urgent", "digital_path")
        user = nurse(s)
        change = Override(urgency="non_urgent", route="callback", reason="haluaa soiton")
        override_triage(s, call, user.id, change)
        override_triage(s, call, user.id, change)
        cbs = s.scalars(select(Callback).where(Callback.call_id == call.id)).all()
        assert len(cbs) == 1 and cbs[0].window_start is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"urgency": "urgent", "route": "digital_path", "digital_path": "uti", "reason": "ok ok"},
        {"urgency": "non_urgent", "route": "digital_path", "reason": "no path named"},
        {"urgency": "urgent", "route": "callback", "digital_path": "uti", "reason": "ok ok"},
        {"urgency": "urgent", "route": "callback", "reason": "  "},
        {"urgency": "very", "route": "callback", "reason": "ok ok"},
    ],
)
def test_an_inconsistent_override_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Override.model_validate(fields)


def test_an_override_to_an_unknown_path_is_refused(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        st = station()
        s.add(st)
        s.flush()
        call = triaged_call(s, st, "non_urgent", "callback")
        change = Override(
            urgency="non_urgent", route="digital_path", digital_path="acne", reason="iho"
        )
        with pytest.raises(ValueError, match="unknown digital path"):
            override_triage(s, call, nurse(s).id, change)


# -- agreement -------------------------------------------------------------------------------------


def test_agreement_counts_only_cases_a_nurse_handled(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        st = station()
        s.add(st)
        s.flush()
        user = nurse(s)
        kept = triaged_call(s, st, "non_urgent", "callback")
        cb = s.scalar(select(Callback).where(Callback.call_id == kept.id))
        assert cb is not None
        cb.state = "done"
        raised = triaged_call(s, st, "non_urgent", "callback")
        override_triage(
            s, raised, user.id, Override(urgency="urgent", route="callback", reason="kova kipu")
        )
        lowered = triaged_call(s, st, "urgent", "nurse_queue")
        override_triage(
            s, lowered, user.id, Override(urgency="non_urgent", route="callback", reason="lievä")
        )
        rerouted = triaged_call(s, st, "non_urgent", "callback")
        override_triage(
            s,
            rerouted,
            user.id,
            Override(
                urgency="non_urgent", route="digital_path", digital_path="uti", reason="sopii"
            ),
        )
        triaged_call(s, st, "non_urgent", "callback")  # nobody has handled it yet
        result = agreement(s, [st.id], TUESDAY_9 - timedelta(days=1), TUESDAY_9 + timedelta(days=1))
    assert (result.assessed, result.agreed, result.raised, result.lowered, result.rerouted) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert result.rate == 0.25
