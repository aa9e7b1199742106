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
    from integrations.sms import SmsSender
    from summarizer.speech.stt import SpeechToText
    from summarizer.text.phrasing import Phraser


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

    @cached_property
    def phraser(self) -> Phraser | None:
        """The configured language-model phraser; None (deterministic text) by default."""
        from esitieto.analysis import phraser_from_settings

        return phraser_from_settings(self.settings)

    @cached_property
    def sms(self) -> SmsSender | None:
        """The SMS sender for digital path links; None when no sender is configured (then
        no caller is offered an SMS: they get a callback)."""
        from integrations.sms import SmsSender

        sender = self.settings.voicebot.sms_sender
        if not sender:
            return None
        tw = self.settings.twilio
        return SmsSender(
            tw.account_sid,
            self.settings.twilio_auth_token.get_secret_value(),
            sender=sender,
            region=tw.region,
            edge=tw.edge,
            base_url=tw.api_base_url,
        )

    def stt(self) -> SpeechToText:
        """The process-wide speech-to-text engine (loaded on first use)."""
        from summarizer.speech.stt import get_engine

        return get_engine(self.settings.asr, self.settings.data_dir)

    def close(self) -> None:
        self.db.dispose()


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
