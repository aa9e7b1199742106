"""The migrations and the model agree, and timestamps keep their time zone on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from esitieto.runtime import Runtime
from models import Base, Call, Station


def test_migrations_create_exactly_the_model(runtime: Runtime) -> None:
    with runtime.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_every_table_the_product_needs_exists(runtime: Runtime) -> None:
    tables = set(inspect(runtime.db.engine).get_table_names())
    assert {
        "stations",
        "calls",
        "recordings",
        "transcripts",
        "transcript_segments",
        "summaries",
        "triage_decisions",
        "callbacks",
        "summary_feedback",
        "caller_feedback",
        "users",
        "audit_events",
        "call_events",
        "jobs",
    } <= tables


def test_constraints_follow_the_naming_convention(runtime: Runtime) -> None:
    insp = inspect(runtime.db.engine)
    assert insp.get_pk_constraint("calls")["name"] == "pk_calls"
    uniques = {u["name"] for u in insp.get_unique_constraints("calls")}
    assert "uq_calls_call_sid" in uniques
    fks = {f["name"] for f in insp.get_foreign_keys("calls")}
    assert "fk_calls_station_id_stations" in fks


def test_timestamps_come_back_aware_and_in_utc(runtime: Runtime) -> None:
    helsinki = timezone(timedelta(hours=2))
    started = datetime(2026, 11, 22, 9, 30, tzinfo=helsinki)
    with runtime.db.session() as s:
        s.add(
            Call(
                station_id="demo",
                call_sid="CA" + "5" * 32,
                to_number="+358900000000",
                started_at=started,
            )
        )
    with runtime.db.session() as s:
        call = s.scalar(select(Call))
        assert call is not None
        assert call.started_at.tzinfo is not None
        assert call.started_at == started
        assert call.started_at.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(runtime: Runtime) -> None:
    with pytest.raises(Exception, match="naive datetime"), runtime.db.session() as s:
        s.add(
            Call(
                station_id="demo",
                call_sid="CA" + "6" * 32,
                to_number="+3589",
                started_at=datetime(2026, 1, 1),
            )
        )
        s.flush()


def test_migrating_twice_is_harmless(runtime: Runtime) -> None:
    runtime.db.migrate()
    with runtime.db.session() as s:
        assert s.get(Station, "demo") is not None
    assert datetime.now(UTC).tzinfo is UTC
