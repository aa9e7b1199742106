"""``esitieto simulate-call``: one whole call through the real webhooks, against a running app
(``--url``) or one started in-process on the same settings, and the case it leaves.

The Twilio side of the call is ``voicebot/simulator.py``; this module only wires it to an app,
a database and the station's number.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from esitieto.runtime import Runtime
from esitieto.settings import Settings
from models import Station
from voicebot.service import give_words
from voicebot.simulator import RecordingServer, SimulationError, play_call, wait_for_case


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def inprocess_app(runtime: Runtime) -> Iterator[str]:
    """The app served on a free local port for as long as the block runs."""
    import uvicorn

    from esitieto.app import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime=runtime), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SimulationError("the in-process app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def simulate_call(
    settings: Settings,
    *,
    station_id: str,
    audio: list[Path],
    url: str | None = None,
    from_number: str = "+358401234567",
    digits: list[str] | None = None,
    hangup_after: int | None = None,
    timeout_s: float = 180.0,
    runtime: Runtime | None = None,
    as_heard: list[str] | None = None,
) -> dict[str, Any]:
    """Play one call and return the finished case as JSON-ready data."""
    for path in audio:
        if not path.is_file():
            raise SimulationError(f"{path}: no such audio file")
    own_runtime = runtime is None
    rt = runtime or Runtime(settings)
    try:
        if url is None:
            with inprocess_app(rt) as base:
                return _play(rt, base, station_id, audio, from_number, digits, hangup_after,
                             timeout_s, as_heard)  # fmt: skip
        from esitieto.app import prepare

        prepare(rt)
        return _play(rt, url, station_id, audio, from_number, digits, hangup_after, timeout_s,
                     as_heard)  # fmt: skip
    finally:
        if own_runtime:
            rt.close()


def _play(
    rt: Runtime,
    base: str,
    station_id: str,
    audio: list[Path],
    from_number: str,
    digits: list[str] | None,
    hangup_after: int | None,
    timeout_s: float,
    as_heard: list[str] | None,
) -> dict[str, Any]:
    with rt.db.session() as session:
        station = session.get(Station, station_id)
        if station is None:
            hint = (
                " (the demo station is created by `make run`, or by any start with"
                " ESITIETO_DEMO__ENABLED=true)"
                if station_id == rt.settings.demo.station_id
                else ""
            )
            raise SimulationError(f"unknown station '{station_id}'{hint}")
        to_number = station.phone_number

    def give(recording_sid: str, text: str) -> None:
        with rt.db.session() as session:
            give_words(session, recording_sid, text)

    account_sid = rt.settings.twilio.account_sid
    auth_token = rt.settings.twilio_auth_token.get_secret_value()
    # The recordings stay served until the case is finished: the after-call pipeline fetches
    # them after the caller has hung up (on a slow machine, after play_call has returned).
    with RecordingServer(account_sid, auth_token) as media:
        played = play_call(
            base,
            account_sid=account_sid,
            auth_token=auth_token,
            to_number=to_number,
            audio=audio,
            from_number=from_number,
            digits=digits,
            hangup_after=hangup_after,
            give_transcript=give,
            as_heard=as_heard,
            media=media,
        )
        case = wait_for_case(rt.db.session, played.call_sid, timeout_s)
    case["heard"] = played.heard
    case["outcome"] = played.outcome
    return case
