"""Station settings from the administrator's file: checked whole, applied whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from esitieto.runtime import Runtime
from esitieto.stations import StationFileError, apply_stations, read_stations
from models import Station
from pretriage.service import StationConfigError, station_paths

EXAMPLE = Path(__file__).resolve().parents[2] / "stations.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stations.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_file_loads_and_sets_paths_and_languages(runtime: Runtime) -> None:
    configs = read_stations(EXAMPLE)
    with runtime.db.session() as s:
        assert apply_stations(s, configs) == ["kallio", "grankulla"]
    with runtime.db.session() as s:
        kallio, grankulla = s.get(Station, "kallio"), s.get(Station, "grankulla")
        assert kallio is not None and grankulla is not None
        assert "lab-results" not in station_paths(kallio) and "uti" in station_paths(kallio)
        assert grankulla.documentation_language == "sv"
        assert kallio.callback_nurses == 3 and kallio.note_headings == {"reason": "Tulosyy"}
    # loading again changes nothing but is allowed
    with runtime.db.session() as s:
        apply_stations(s, read_stations(EXAMPLE))


GOOD = """
stations:
  - id: a
    name: A
    phone_number: "+358931000011"
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "    colour: red\n", "colour"),
        (GOOD + "    timezone: Mars/Olympus\n", "unknown time zone"),
        (GOOD + "    note_headings: {diagnosis: X}\n", "unknown note headings"),
        (GOOD + "    digital_paths: {uti: {sms_link: 'http://x.fi'}}\n", "https://"),
        (GOOD + "    callback_nurses: 0\n", "callback_nurses"),
        (GOOD.replace("+358931000011", "0931000011"), "phone_number"),
        (GOOD + GOOD.replace("stations:\n", ""), "the same id twice"),
        ("stations: [", "stations.yaml"),
    ],
)
def test_a_wrong_file_is_refused_saying_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StationFileError, match=message):
        read_stations(write(tmp_path, text))


def test_a_wrong_station_leaves_every_station_as_it_was(runtime: Runtime, tmp_path: Path) -> None:
    text = (
        GOOD
        + GOOD.replace("stations:\n", "")
        .replace("id: a", "id: b")
        .replace("+358931000011", "+358931000012")
        + "    digital_paths: {acne: {sms_link: 'https://x.fi'}}\n"
    )
    configs = read_stations(write(tmp_path, text))
    with pytest.raises(StationConfigError, match="acne"), runtime.db.session() as s:
        apply_stations(s, configs)
    with runtime.db.session() as s:
        assert s.get(Station, "a") is None


def test_a_number_taken_by_another_station_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    text = GOOD.replace("+358931000011", runtime.settings.demo.phone_number)
    with pytest.raises(StationFileError, match="demo"), runtime.db.session() as s:
        apply_stations(s, read_stations(write(tmp_path, text)))


def test_a_station_that_never_opens_is_refused_before_a_caller_finds_out(
    runtime: Runtime, tmp_path: Path
) -> None:
    configs = read_stations(write(tmp_path, GOOD + "    opening_hours: {daily: closed}\n"))
    with pytest.raises(StationConfigError, match="never open"), runtime.db.session() as s:
        apply_stations(s, configs)
    with runtime.db.session() as s:
        assert s.get(Station, "a") is None
