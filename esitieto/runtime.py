"""The composition root's parts, built once per process and shared by web, worker and CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from fastapi import Request

from esitieto.db import Database
from esitieto.settings import Settings
from integrations.storage import LocalFileStorage, Storage
from integrations.twilio import RecordingFetcher

if TYPE_CHECKING:
    from summarizer.stt import SpeechToText


@dataclass
class Runtime:
    settings: Settings
    db: Database = field(init=False)
    worker_alive: Callable[[], bool] | None = None
    """Set by the app when it runs an in-process worker (for /healthz)."""

    def __post_init__(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(
            self.settings.database_url,
            echo=self.settings.database.echo,
            pool_size=self.settings.database.pool_size,
        )

    @cached_property
    def storage(self) -> Storage:
        return LocalFileStorage(self.settings.recordings_dir)

    @cached_property
    def fetcher(self) -> RecordingFetcher:
        return RecordingFetcher(
            self.settings.twilio.account_sid,
            self.settings.twilio_auth_token.get_secret_value(),
            timeout_s=self.settings.twilio.recording_fetch_timeout_s,
        )

    def stt(self) -> SpeechToText:
        """The process-wide speech-to-text engine (loaded on first use)."""
        from summarizer.stt import get_engine

        return get_engine(self.settings.asr, self.settings.data_dir)

    def close(self) -> None:
        self.db.dispose()


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
