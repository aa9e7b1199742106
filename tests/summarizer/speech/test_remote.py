"""Speech-to-text as a service: ``stt-serve`` speaks OpenAI's transcription API, the remote
engine uses a pool of such servers with a circuit breaker each, and the local engine takes
over when no server answers."""

from __future__ import annotations

import http.server
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi.testclient import TestClient

from summarizer.speech.audio import AudioClip
from summarizer.speech.remote import CircuitBreaker, FallbackSpeechToText, RemoteSpeechToText
from summarizer.speech.schemas import Transcript, TranscriptSegment
from summarizer.speech.scripted import ScriptedSpeechToText
from summarizer.speech.serve import create_stt_app
from summarizer.speech.stt import (
    SpeechToText,
    TranscriptionError,
    average_confidence,
    transcribe_within,
)
from tests.servers import free_port, serving

WORDS = "Kissani katosi pihalta eilen illalla."
KEY = "stt-test-key"


class Counting(ScriptedSpeechToText):
    """Hears the words for any audio (what arrives over the wire is re-encoded WAV), and
    counts its calls."""

    def __init__(self) -> None:
        super().__init__(avg_logprob=-0.2, unknown=WORDS)
        self.calls = 0

    def transcribe(
        self, audio: Path | bytes, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        self.calls += 1
        return super().transcribe(audio, language=language, prompt=prompt)


@pytest.fixture
def engine(finnish_mulaw_wav: Path) -> Counting:
    e = Counting()
    e.say(finnish_mulaw_wav, WORDS)
    return e


def test_stt_serve_answers_as_openai_documents(engine: Counting, finnish_mulaw_wav: Path) -> None:
    client = TestClient(create_stt_app(engine, api_key=KEY))
    auth = {"Authorization": f"Bearer {KEY}"}
    audio = {"file": ("call.wav", finnish_mulaw_wav.read_bytes(), "audio/wav")}

    def post(**form: str) -> Any:
        return client.post("/v1/audio/transcriptions", files=audio, data=form, headers=auth)

    assert post(model="whisper-1").json() == {"text": WORDS}
    verbose = post(model="whisper-1", language="fi", response_format="verbose_json").json()
    assert verbose["language"] == "finnish" and verbose["text"] == WORDS
    assert verbose["duration"] > 0 and verbose["segments"][0]["avg_logprob"] == -0.2
    assert post(response_format="text").text == WORDS

    wrong = client.post("/v1/audio/transcriptions", files=audio, headers={"Authorization": "x"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    garbage = {"file": ("call.wav", b"not audio at all", "audio/wav")}
    bad = client.post("/v1/audio/transcriptions", files=garbage, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_audio"
    small = TestClient(create_stt_app(engine, max_bytes=1000))
    assert small.post("/v1/audio/transcriptions", files=audio).status_code == 413
    assert client.get("/health").json()["status"] == "ok"  # no key needed


def test_the_remote_engine_uses_every_server_of_its_pool(finnish_mulaw_wav: Path) -> None:
    a, b = Counting(), Counting()
    with (
        serving(create_stt_app(a, api_key=KEY)) as url_a,
        serving(create_stt_app(b, api_key=KEY)) as url_b,
    ):
        remote = RemoteSpeechToText([url_a, url_b], api_key=KEY)
        texts = [remote.transcribe(finnish_mulaw_wav, language="fi") for _ in range(4)]
    assert {t.text for t in texts} == {WORDS} and {t.language for t in texts} == {"fi"}
    assert a.calls == 2 and b.calls == 2  # round robin
    assert texts[0].engine == "remote" and remote.concurrency == 2
    confidence = average_confidence(texts[0])
    assert confidence is not None and math.isclose(confidence, math.exp(-0.2), rel_tol=1e-6)


class _Broken(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[int] = 0

    def do_POST(self) -> None:
        _Broken.hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def broken() -> Iterator[str]:
    _Broken.hits = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_failing_server_is_left_alone_once_its_breaker_opens(
    engine: Counting, broken: str, finnish_mulaw_wav: Path
) -> None:
    with serving(create_stt_app(engine)) as good:
        remote = RemoteSpeechToText([broken, good], breaker_failures=2, breaker_reset_s=3600)
        for _ in range(6):
            assert remote.transcribe(finnish_mulaw_wav, language="fi").text == WORDS
    assert _Broken.hits == 2 and remote.breakers[broken].open  # then never asked again
    assert engine.calls == 6


def test_the_breaker_lets_one_request_try_after_its_reset_time() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, reset_s=30, clock=lambda: now[0])
    breaker.failed()
    assert breaker.allows()
    breaker.failed()
    assert not breaker.allows()
    now[0] = 31.0
    assert breaker.allows() and not breaker.allows()  # one trial only
    breaker.succeeded()
    assert breaker.allows() and not breaker.open


def test_with_no_server_answering_the_local_engine_transcribes(
    engine: Counting, broken: str, finnish_mulaw_wav: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    remote = RemoteSpeechToText([dead, broken], timeout_s=5)
    with pytest.raises(TranscriptionError, match="no speech-to-text server answered"):
        remote.transcribe(finnish_mulaw_wav, language="fi")
    t = FallbackSpeechToText(remote, lambda: engine).transcribe(finnish_mulaw_wav, language="fi")
    assert t.text == WORDS and t.engine == engine.name


class _Meeting(SpeechToText):
    """Each transcription waits until another one is running at the same time."""

    name = "meeting"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.barrier = threading.Barrier(2, timeout=10)

    def _transcribe_impl(
        self, clip: AudioClip, *, language: str | None, prompt: str | None
    ) -> Transcript:
        self.barrier.wait()
        return Transcript(
            text="ok", language="fi", segments=[TranscriptSegment(start=0, end=1, text="ok")]
        )


def test_in_call_transcriptions_run_one_per_server_at_once(finnish_mulaw_wav: Path) -> None:
    """With two servers, two callers are heard at the same time (a local model: one by one)."""
    engine = _Meeting(concurrency=2)
    results: list[Transcript | None] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                transcribe_within(engine, finnish_mulaw_wav, budget_s=20, language="fi")
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.text if r else None for r in results] == ["ok", "ok"]


@pytest.mark.slow
def test_stt_serve_with_the_real_model_behind_the_remote_engine(
    finnish_mulaw_wav: Path, bundled_model_dir: Path, tmp_path: Path
) -> None:
    """``esitieto stt-serve`` as its own process, with the bundled Whisper model."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESITIETO_")}
    env.update(ESITIETO_DATA_DIR=str(bundled_model_dir.parent.parent),
               ESITIETO_ASR__REMOTE_API_KEY=KEY, ESITIETO_ASR__CPU_THREADS="1")  # fmt: skip
    log = (tmp_path / "stt.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "esitieto.cli", "stt-serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "stt-serve did not start"
            time.sleep(0.2)
        t = RemoteSpeechToText([url], api_key=KEY, timeout_s=120).transcribe(
            finnish_mulaw_wav, language="fi"
        )
        assert t.text.strip() and t.language == "fi" and t.segments
        assert all(s.avg_logprob is not None for s in t.segments)  # confidence goes across
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
