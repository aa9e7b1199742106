"""The composition root's parts, built once per process and shared by web, worker and CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from fastapi import Request

from esitieto.db import Database
from esitieto.settings import Settings
from integrations.storage import LocalFileStorage, Storage
from integrations.twilio import CallsApi, RecordingFetcher, api_base_url
from models import utcnow

if TYPE_CHECKING:
    from esitieto.analysis_pool import AnalysisPool
    from esitieto.job_engine import Delivery
    from integrations.fhir.client import FhirClient
    from integrations.sms import SmsSender
    from pretriage.analysis import Analyzer
    from pretriage.detector import SignDetector
    from summarizer.speech.stt import SpeechToText
    from summarizer.text.phrasing import Phraser
    from voicebot.deps import VoicebotDeps


@dataclass
class Runtime:
    settings: Settings
    db: Database = field(init=False)
    worker_alive: Callable[[], bool] | None = None
    """Set by the app when it runs an in-process worker (for /healthz)."""
    speech_to_text: SpeechToText | None = None
    """An engine to use instead of the configured one (tests give a scripted engine)."""
    clock: Callable[[], datetime] = utcnow
    """Now, as an aware UTC datetime; tests pin it."""

    def __post_init__(self) -> None:
        self.settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.settings.data_dir.chmod(0o700)  # the database, recordings and secrets live here
        self.db = Database(
            self.settings.database_url,
            echo=self.settings.database.echo,
            pool_size=self.settings.database.pool_size,
            keyring=self.settings.keyring,
        )

    @cached_property
    def delivery(self) -> Delivery | None:
        """procrastinate's hand-over of committed jobs (None: the embedded worker polls)."""
        if self.settings.worker.engine != "procrastinate":
            return None
        from sqlalchemy import event

        from esitieto.job_engine import Delivery
        from voicebot.tasks import Pipeline

        lanes = {kind: spec.lane for kind, spec in Pipeline(self.voicebot).specs().items()}
        delivery = Delivery(self.settings.database_url, lanes)
        event.listen(self.db.sessionmaker, "after_commit", delivery.after_commit)
        return delivery

    @cached_property
    def storage(self) -> Storage:
        return LocalFileStorage(self.settings.recordings_dir, keyring=self.settings.keyring)

    @cached_property
    def fetcher(self) -> RecordingFetcher:
        return RecordingFetcher(
            self.settings.twilio.account_sid,
            self.settings.twilio_auth_token.get_secret_value(),
            timeout_s=self.settings.twilio.recording_fetch_timeout_s,
            max_bytes=self.settings.twilio.recording_max_bytes,
            api_base_url=self.settings.twilio.api_base_url,
            allow_loopback=self.settings.twilio.allow_local_recordings,
        )

    @cached_property
    def calls_api(self) -> CallsApi | None:
        """Twilio's Calls API, for reconciling calls whose final callback was lost; None
        without a Twilio account (no auth token configured, no API host given)."""
        tw = self.settings.twilio
        if tw.auth_token is None and tw.api_base_url is None:
            return None
        return CallsApi(
            tw.account_sid,
            self.settings.twilio_auth_token.get_secret_value(),
            base_url=tw.api_base_url or api_base_url(tw.region, tw.edge),
        )

    @cached_property
    def phraser(self) -> Phraser | None:
        """The configured language-model phraser; None (deterministic text) by default."""
        from summarizer.text.phrasing import phraser_from_settings

        return phraser_from_settings(self.settings.summarizer)

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
        if self.speech_to_text is not None:
            return self.speech_to_text
        from summarizer.speech.stt import get_engine

        return get_engine(self.settings.asr, self.settings.data_dir)

    @cached_property
    def detector(self) -> SignDetector | None:
        """The detector by meaning (None when switched off); a classifier that does not fit
        the embedder or the sign data stops the app at start-up."""
        from pretriage.detector import detector_from_settings

        return detector_from_settings(self.settings.detector)

    @cached_property
    def analyzer(self) -> Analyzer:
        from pretriage.analysis import Analyzer

        return Analyzer(phraser=self.phraser, detector=self.detector)

    @cached_property
    def analysis_pool(self) -> AnalysisPool | None:
        """The API's analysis processes (None: ``web.analyze_workers`` is 0)."""
        web = self.settings.web
        if web.analyze_workers == 0:
            return None
        from esitieto.analysis_pool import AnalysisPool

        return AnalysisPool(
            self.settings.summarizer,
            self.settings.detector,
            workers=web.analyze_workers,
            deadline_s=web.analyze_deadline_s,
        )

    @cached_property
    def voicebot(self) -> VoicebotDeps:
        """What the call's webhooks and jobs are given (see ``voicebot/deps.py``)."""
        from voicebot.deps import VoicebotDeps

        settings = self.settings
        return VoicebotDeps(
            session=self.db.session,
            auth_token=settings.twilio_auth_token,
            public_base_url=settings.twilio.public_base_url,
            fetch_recording=self.fetcher.fetch,
            storage=self.storage,
            speech_to_text=self.stt,
            analyze=self.analyzer,
            identity_key=settings.identity_key,
            sms=self.sms,
            call_at_twilio=self.calls_api.fetch if self.calls_api else None,
            export_fhir=self.fhir.post_bundle if self.fhir else None,
            fhir_case_system=settings.fhir.identifier_system,
            in_call_budget_s=settings.voicebot.in_call_budget_s,
            abandoned_call_after_s=settings.worker.abandoned_call_after_s,
            clock=lambda: self.clock(),  # read at each use: a test may pin it later
        )

    @cached_property
    def fhir(self) -> FhirClient | None:
        """The county's FHIR server (None: ``fhir.base_url`` is not set, no export)."""
        if not self.settings.fhir.base_url:
            return None
        from integrations.fhir.client import FhirClient

        return FhirClient(self.settings.fhir)

    def close(self) -> None:
        if "delivery" in self.__dict__ and self.delivery is not None:
            self.delivery.close()
        if "fhir" in self.__dict__ and self.fhir is not None:
            self.fhir.close()
        if "analysis_pool" in self.__dict__ and self.analysis_pool is not None:
            self.analysis_pool.close()
        self.db.dispose()


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
