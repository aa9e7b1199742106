"""Real audio for the speech-to-text tests, synthesised with espeak-ng/sox/ffmpeg (no mocks).

Recordings are made the way a phone line delivers them: 8 kHz μ-law or 16-bit PCM WAV, or MP3.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

FINNISH_SENTENCE = "Minulla on ollut kova päänsärky kaksi päivää."
"""An invented caller: headache for two days."""


def need(*commands: str) -> None:
    for cmd in commands:
        if shutil.which(cmd) is None:
            pytest.skip(f"{cmd} is not installed: needed to synthesise test audio")


def run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def finnish_wide_wav(audio_dir: Path) -> Path:
    """espeak-ng's own output (22 kHz 16-bit PCM), the source for the phone-line variants."""
    need("espeak-ng")
    out = audio_dir / "fi-22k.wav"
    run("espeak-ng", "-v", "fi", "-s", "140", "-w", str(out), FINNISH_SENTENCE)
    return out


@pytest.fixture(scope="session")
def finnish_mulaw_wav(finnish_wide_wav: Path, audio_dir: Path) -> Path:
    need("sox")
    out = audio_dir / "fi-ulaw.wav"
    run("sox", "-R", str(finnish_wide_wav), "-r", "8000", "-c", "1", "-e", "u-law", str(out))
    return out


@pytest.fixture(scope="session")
def finnish_noisy_wav(finnish_wide_wav: Path, audio_dir: Path) -> Path:
    """The sentence under loud line noise (the same noise every time: ``sox -R``), where
    Whisper's temperature fallback would kick in."""
    need("sox")
    noise, out = audio_dir / "noise.wav", audio_dir / "fi-noisy.wav"
    run("sox", "-R", str(finnish_wide_wav), str(noise), "synth", "whitenoise", "vol", "0.3")
    run("sox", "-R", "-m", str(finnish_wide_wav), str(noise), "-r", "8000", "-c", "1", str(out))
    return out


@pytest.fixture(scope="session")
def finnish_pcm_wav(finnish_wide_wav: Path, audio_dir: Path) -> Path:
    need("sox")
    out = audio_dir / "fi-pcm16.wav"
    run(
        "sox", "-R", str(finnish_wide_wav), "-r", "8000", "-c", "1", "-e", "signed-integer", "-b",
        "16", str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def finnish_mp3(finnish_wide_wav: Path, audio_dir: Path) -> Path:
    need("ffmpeg")
    out = audio_dir / "fi.mp3"
    run(
        "ffmpeg", "-loglevel", "error", "-y", "-i", str(finnish_wide_wav), "-ar", "8000",
        "-ac", "1", "-b:a", "32k", str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def silent_mulaw_wav(audio_dir: Path) -> Path:
    need("sox")
    out = audio_dir / "silent.wav"
    run("sox", "-R", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(out), "trim", "0", "3")
    return out


@pytest.fixture(scope="session")
def noise_wav(audio_dir: Path) -> Path:
    """Line noise with energy but no speech (3 s of white noise at about -30 dBFS)."""
    need("sox")
    out = audio_dir / "noise.wav"
    run(
        "sox", "-R", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(out),
        "synth", "3", "whitenoise", "vol", "0.03",
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def too_long_wav(audio_dir: Path) -> Path:
    """610 s of quiet noise: over the default 600 s limit."""
    need("sox")
    out = audio_dir / "long.wav"
    run(
        "sox", "-R", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(out),
        "synth", "610", "whitenoise", "vol", "0.01",
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def empty_file(audio_dir: Path) -> Path:
    out = audio_dir / "empty.wav"
    out.write_bytes(b"")
    return out


@pytest.fixture(scope="session")
def corrupt_wav(audio_dir: Path) -> Path:
    out = audio_dir / "corrupt.wav"
    out.write_bytes(random.Random(1234).randbytes(4096))
    return out
