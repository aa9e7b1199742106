"""``esitieto rotate-keys``: seal every stored health value and recording with the current key.

Run after putting a new key first in ``ESITIETO_ENCRYPTION__KEYS`` (the old one stays after
it until this has finished), and after upgrading a database that held plain values. Rows are
read (opened with whichever key sealed them) and written back (sealed with the current key)
in batches, each its own transaction, so a run can be stopped and started again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from esitieto.db import Database
from integrations.storage import Storage
from models import (
    Base,
    Call,
    Callback,
    GivenTranscript,
    Recording,
    Summary,
    Transcript,
    TranscriptSegment,
)

log = logging.getLogger(__name__)

SEALED_COLUMNS: dict[type[Base], tuple[str, ...]] = {
    Transcript: ("text",),
    TranscriptSegment: ("text",),
    GivenTranscript: ("text",),
    Summary: ("source_text", "note", "data"),
    Call: ("from_number", "dialogue"),
    Callback: ("phone_number",),
}
"""Every encrypted column, by model (``models/encryption.py`` types)."""
BATCH = 500


@dataclass
class RotationReport:
    rows: dict[str, int] = field(default_factory=dict)
    recordings: int = 0
    missing_files: int = 0


def rotate_keys(db: Database, storage: Storage) -> RotationReport:
    report = RotationReport()
    for model, columns in SEALED_COLUMNS.items():
        report.rows[model.__tablename__] = _reseal_rows(db, model, columns)
    with db.session() as session:
        keys = session.scalars(
            select(Recording.storage_key).where(Recording.storage_key.is_not(None))
        )
        storage_keys = [k for k in keys if k]
    for key in storage_keys:
        try:
            storage.put(key, storage.get(key))
        except FileNotFoundError:
            report.missing_files += 1  # deleted by retention, or never fetched
            continue
        report.recordings += 1
    log.info("resealed %s rows and %d recordings", sum(report.rows.values()), report.recordings)
    return report


def _reseal_rows(db: Database, model: type[Base], columns: tuple[str, ...]) -> int:
    pk = model.__mapper__.primary_key[0]
    done, after = 0, None
    while True:
        with db.session() as session:
            rows = _batch(session, model, pk, after)
            for row in rows:
                for column in columns:
                    flag_modified(row, column)  # written back, so sealed with the current key
            done += len(rows)
            if len(rows) < BATCH:
                return done
            after = getattr(rows[-1], str(pk.key))


def _batch(session: Session, model: type[Base], pk: Any, after: object) -> list[Any]:
    query: Select[Any] = select(model).order_by(pk).limit(BATCH)
    if after is not None:
        query = query.where(pk > after)
    return list(session.scalars(query))
