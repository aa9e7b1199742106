"""Health data at rest: transcripts, given words, summaries and recordings are sealed with the
configured keyring, open with any key still configured, and rotate to a new key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from esitieto.app import prepare
from esitieto.rotation import rotate_keys
from esitieto.runtime import Runtime
from esitieto.settings import EncryptionSettings
from models import (
    Call,
    Callback,
    GivenTranscript,
    Recording,
    Summary,
    Transcript,
    TranscriptSegment,
)
from models.encryption import EncryptionError, Keyring, text_key_id
from tests.conftest import make_settings

WORDS = "Minulla on puristava rintakipu ja vasen käsi puutuu"
"""A synthetic caller's words, looked for in every file the service writes."""
NUMBER = "+358401239876"
K1, K2 = "k1:" + "11" * 32, "k2:" + "22" * 32


def _runtime(data_dir: Path, database_url: str | None, keys: str) -> Runtime:
    settings = make_settings(data_dir, database_url)
    settings.encryption = EncryptionSettings(keys=SecretStr(keys))
    rt = Runtime(settings)
    prepare(rt)
    return rt


def _store_case(rt: Runtime) -> str:
    with rt.db.session() as s:
        call = Call(station_id="demo", call_sid="CA" + "e" * 32, to_number="+358900000000",
                    from_number=NUMBER, dialogue={"heard": WORDS, "language": "fi"})  # fmt: skip
        s.add(call)
        s.flush()
        s.add(Callback(call_id=call.id, station_id="demo", phone_number=NUMBER))
        rec = Recording(call_id=call.id, recording_sid="RE" + "e" * 32, sequence=1,
                        prompt_key="reason", storage_key="CAe/REe.wav")  # fmt: skip
        s.add(rec)
        s.flush()
        t = Transcript(recording_id=rec.id, call_id=call.id, engine="scripted",
                       model="scripted", language="fi", text=WORDS)  # fmt: skip
        t.segments = [TranscriptSegment(seq=0, start_s=0.0, end_s=3.0, text=WORDS)]
        s.add(t)
        s.add(GivenTranscript(recording_sid=rec.recording_sid, text=WORDS))
        s.add(Summary(call_id=call.id, generator="rules", source_text=WORDS, reason="Rintakipu",
                      note=f"Soittajan sanoin: '{WORDS}'", data={"evidence": [WORDS]}))  # fmt: skip
    rt.storage.put("CAe/REe.wav", b"RIFF" + WORDS.encode() * 20)
    return call.id


def _raw(rt: Runtime, table: str, column: str) -> list[str]:
    with rt.db.engine.connect() as conn:
        query = f"SELECT {column} FROM {table}"  # noqa: S608 - names from this module only
        return [row[0] for row in conn.execute(text(query))]


SEALED = [("transcripts", "text"), ("transcript_segments", "text"),
          ("given_transcripts", "text"), ("summaries", "source_text"), ("summaries", "note"),
          ("summaries", "data"), ("calls", "from_number"), ("calls", "dialogue"),
          ("callbacks", "phone_number")]  # fmt: skip


def test_health_text_and_recordings_are_sealed_at_rest(tmp_path: Path, database_url: str) -> None:
    rt = _runtime(tmp_path / "var", database_url, K1)
    try:
        call_id = _store_case(rt)
        for table, column in SEALED:
            values = _raw(rt, table, column)
            assert values and all(str(v).startswith("enc1:") for v in values), (table, column)
            assert not any(WORDS in str(v) or NUMBER in str(v) for v in values)
        with rt.db.session() as s:  # the app reads them as they were
            summary = s.query(Summary).filter_by(call_id=call_id).one()
            assert summary.source_text == WORDS and summary.data == {"evidence": [WORDS]}
            assert s.query(Transcript).one().segments[0].text == WORDS
            call = s.get(Call, call_id)
            assert call is not None and call.from_number == NUMBER
            assert call.dialogue == {"heard": WORDS, "language": "fi"}
        assert rt.storage.get("CAe/REe.wav").startswith(b"RIFF" + WORDS.encode())
        # nothing the service wrote to disk holds the words in clear (the database, its WAL,
        # the recording)
        for path in (tmp_path / "var").rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert WORDS.encode() not in data and NUMBER.encode() not in data, path.name
    finally:
        rt.close()


def test_a_recording_file_cannot_pass_for_another_one(tmp_path: Path) -> None:
    rt = _runtime(tmp_path / "var", None, K1)
    try:
        rt.storage.put("CA1/RE1.wav", b"RIFF-first")
        moved = rt.settings.recordings_dir / "CA2" / "RE2.wav"
        moved.parent.mkdir()
        moved.write_bytes((rt.settings.recordings_dir / "CA1" / "RE1.wav").read_bytes())
        with pytest.raises(EncryptionError):
            rt.storage.get("CA2/RE2.wav")
    finally:
        rt.close()


def test_keys_rotate_and_the_old_key_can_then_go(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "var"
    rt = _runtime(data, database_url, K1)
    _store_case(rt)
    with rt.db.engine.begin() as conn:  # a value from before encryption existed
        conn.execute(text("UPDATE transcripts SET model = 'legacy', text = :t"), {"t": WORDS})
    rt.close()

    rt = _runtime(data, database_url, f"{K2},{K1}")  # the new key first, the old one kept
    report = rotate_keys(rt.db, rt.storage)
    assert report.rows["summaries"] == 1 and report.rows["calls"] == 1
    assert report.recordings == 1
    for table, column in SEALED:
        assert {text_key_id(str(v)) for v in _raw(rt, table, column)} == {"k2"}, table
    rt.close()

    rt = _runtime(data, database_url, K2)  # the old key dropped: everything still opens
    try:
        with rt.db.session() as s:
            assert s.query(Transcript).one().text == WORDS
        assert rt.storage.get("CAe/REe.wav").startswith(b"RIFF")
    finally:
        rt.close()

    rt = _runtime(data, database_url, K1)  # only the retired key: a clear error
    try:
        with pytest.raises(EncryptionError, match="no encryption key 'k2'"), rt.db.session() as s:
            s.query(Transcript).one()
    finally:
        rt.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "no encryption key"), ("k1:abcd", "64 hex digits"), ("k 1:" + "11" * 32, "key id"),
     (f"{K1},{K1}", "twice")],
)  # fmt: skip
def test_bad_key_settings_are_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(EncryptionError, match=message):
        Keyring.parse(spec)
