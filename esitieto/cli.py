"""The ``esitieto`` command line (``docs/interfaces.md`` is the contract)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from pydantic import ValidationError

from esitieto.settings import Settings


def _fail(message: str, code: int = 2) -> int:
    print(f"esitieto: {message}", file=sys.stderr)
    return code


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from esitieto.app import create_app, prepare
    from esitieto.runtime import Runtime

    runtime = Runtime(Settings())
    demo = prepare(runtime)
    url = f"http://{args.host}:{args.port}"
    lines = [f"Esitieto: {url}", f"database: {runtime.db.engine.url.render_as_string()}"]
    if demo is not None:
        # On a terminal (``make run``) the password is shown; anywhere else (a service whose
        # output goes to a log) it is never written: it is in the data directory's secrets.
        secrets_file = runtime.settings.data_dir / "secrets.json"
        password = (
            demo.password
            if sys.stdout.isatty()
            else "ESITIETO_DEMO__NURSE_PASSWORD"
            if runtime.settings.demo.nurse_password
            else f"demo_nurse_password in {secrets_file}"
        )
        lines += [
            "",
            f"Demo sign-in (password {password}):",
            f"  nurse          {demo.username}",
            f"  station lead   {demo.lead_username}",
            f"  administrator  {demo.admin_username}",
            f"Demo station '{demo.station_id}', number {demo.phone_number}",
        ]
    print(banner(lines), flush=True)
    uvicorn.run(create_app(runtime=runtime), host=args.host, port=args.port, log_level="info")
    return 0


def cmd_stt_serve(args: argparse.Namespace) -> int:
    """This machine's speech-to-text behind OpenAI's transcription API (a pool member)."""
    import uvicorn

    from summarizer.speech.serve import create_stt_app
    from summarizer.speech.stt import get_engine

    settings = Settings()
    asr = settings.asr
    if asr.engine == "remote":  # a pool member transcribes itself, never forwards
        asr = asr.model_copy(update={"engine": "faster-whisper"})
    engine = get_engine(asr, settings.data_dir)
    engine.load()
    key = settings.asr.remote_api_key
    app = create_stt_app(engine, api_key=key.get_secret_value() if key else None)
    lines = [
        f"Esitieto speech-to-text: http://{args.host}:{args.port}/v1/audio/transcriptions",
        f"engine {engine.name}, model {engine.model_name}",
        "API key required (ESITIETO_ASR__REMOTE_API_KEY)" if key else "no API key: loopback only",
    ]
    if key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        return _fail("stt-serve on a network address needs ESITIETO_ASR__REMOTE_API_KEY")
    print(banner(lines), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def banner(lines: list[str]) -> str:
    """Lines in a frame, so they stand out from the log lines around them."""
    width = max(len(line) for line in lines) + 2
    rule = "+" + "-" * width + "+"
    return "\n".join([rule, *(f"| {line.ljust(width - 1)}|" for line in lines), rule])


def cmd_worker(args: argparse.Namespace) -> int:
    from esitieto.app import prepare, start_lanes, stop_lanes
    from esitieto.runtime import Runtime

    settings = Settings()
    lanes = args.lanes.split(",") if args.lanes else settings.worker.lanes
    runtime = Runtime(settings)
    prepare(runtime)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if settings.worker.engine == "procrastinate":
        from esitieto.app import run_delivered_jobs

        # housekeeping (sweeps, reconciliation, retention, the relay) in a thread; the
        # lanes' jobs as procrastinate delivers them
        housekeeping = start_lanes(runtime, [lane for lane in lanes if lane == "housekeeping"])
        print(f"Esitieto worker started (procrastinate): lanes {', '.join(lanes)}", flush=True)
        run_delivered_jobs(runtime, lanes, stop)
        stop_lanes(housekeeping)
        runtime.close()
        return 0
    try:
        workers = start_lanes(runtime, lanes)
    except ValueError as exc:
        return _fail(str(exc))
    print(f"Esitieto worker started: lanes {', '.join(w.name for w in workers)}", flush=True)
    while not stop.wait(1.0):
        if not all(w.alive for w in workers):
            stop_lanes(workers)
            runtime.close()
            return _fail("a worker lane stopped; see the log", code=1)
    stop_lanes(workers)
    runtime.close()
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from summarizer.speech.audio import AudioError
    from summarizer.speech.stt import TranscriptionError, get_engine

    settings = Settings()
    asr = settings.asr.model_copy(
        update={k: v for k, v in {"engine": args.engine, "model": args.model}.items() if v}
    )
    try:
        engine = get_engine(asr, settings.data_dir)
    except (ValueError, ImportError, OSError) as exc:
        return _fail(str(exc))
    status = 0
    for audio in args.audio:
        path = Path(audio)
        if not path.is_file():
            status = _fail(f"{audio}: no such file", 1)
            continue
        try:
            t = engine.transcribe(path, language=args.language)
        except (AudioError, TranscriptionError) as exc:
            status = _fail(f"{audio}: {exc}", 1)
            continue
        if args.json:
            out = {"file": str(path), **t.model_dump(mode="json")}
            print(json.dumps(out, ensure_ascii=False), flush=True)
        elif not t.segments:
            print(f"{audio}: no speech heard ({t.audio_duration_s:.1f} s of audio)", flush=True)
        else:
            for s in t.segments:
                print(f"[{s.start:6.2f} → {s.end:6.2f}] {s.text}", flush=True)
    return status


def field_errors(exc: ValidationError, prefix: str) -> str:
    """ "context.age: Input should be a valid integer" for each wrong field (pydantic's own
    first line names only the model)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in (prefix, *err["loc"]))
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def cmd_analyze(args: argparse.Namespace) -> int:
    from pretriage.analysis import analyze_text
    from summarizer.text.schemas import CallContext

    if not args.jsonl:
        return _fail("analyze reads JSON lines: use --jsonl")
    from esitieto.settings import get_settings
    from pretriage.detector import DetectorError, detector_from_settings
    from pretriage.ruleset import RulesetError, default_ruleset
    from pretriage.signs import SignsError
    from summarizer.text.lexicon import LexiconError
    from summarizer.text.phrasing import phraser_from_settings

    try:
        default_ruleset()  # compiles the lexicon too: a malformed file stops here, not per line
        settings = get_settings()
        phraser = phraser_from_settings(settings.summarizer)
        detector = detector_from_settings(settings.detector)
    except (RulesetError, LexiconError, SignsError, DetectorError, ValueError) as exc:
        return _fail(str(exc), 2)
    for line_no, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        item_id = None
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("a line must be a JSON object")
            item_id = item.get("id")
            text = item.get("text")
            if not isinstance(text, str):
                raise ValueError("'text' must be a string")
            try:
                context = CallContext.model_validate(item.get("context") or {})
            except ValidationError as exc:
                raise ValueError(field_errors(exc, "context")) from exc
            note_language = item.get("note_language", "fi")
            if note_language not in ("fi", "sv", "en"):
                raise ValueError("'note_language' must be fi, sv or en")
            result = analyze_text(
                None,
                text,
                context,
                note_language=note_language,
                phraser=phraser,
                detector=detector,
            ).model_dump(mode="json")
            result["id"] = item_id  # any JSON value, copied as it came
        except ValueError as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            result = {"id": item_id, "error": f"line {line_no}: {message}"}
        print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


KEYPAD_ANSWER = re.compile(r"^[0-9#*]+$")


def split_keypad_answers(digits: list[str], audio: list[str]) -> tuple[list[str], list[str]]:
    """``--digits 1 2 '#' call.wav``: keypad answers end at the first word that is not one,
    and the rest are audio files (argparse would take them all as answers)."""
    for i, word in enumerate(digits):
        if not KEYPAD_ANSWER.match(word):
            return digits[:i], digits[i:] + audio
    return digits, audio


def cmd_simulate_call(args: argparse.Namespace) -> int:
    from esitieto.simulate import simulate_call
    from voicebot.simulator import SimulationError

    digits, audio = split_keypad_answers(args.digits or [], args.audio)
    try:
        case = simulate_call(
            Settings(),
            station_id=args.station,
            audio=[Path(a) for a in audio],
            url=args.url,
            from_number=args.from_number,
            digits=digits,
            hangup_after=args.hangup_after,
            timeout_s=args.timeout,
            as_heard=args.as_heard or [],
        )
    except SimulationError as exc:
        return _fail(str(exc), 1)
    print(json.dumps(case, ensure_ascii=False, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esitieto", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the web app (webhooks, staff pages, API)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "stt-serve", help="speech-to-text as a server (OpenAI's /v1/audio/transcriptions)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.set_defaults(func=cmd_stt_serve)

    p = sub.add_parser("worker", help="run a job worker (one thread per lane)")
    p.add_argument(
        "--lanes",
        default=None,
        help="comma-separated: fetch, transcribe, cases, housekeeping (default: all)",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("transcribe", help="speech-to-text of audio files")
    p.add_argument("audio", nargs="+")
    p.add_argument("--engine", default=None, help="faster-whisper (default)")
    p.add_argument("--model", default=None, help="a model directory (default: bundled base)")
    p.add_argument("--language", default=None, help="fi, sv or en (default: detect)")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("analyze", help="summary + pretriage of JSON lines on stdin")
    p.add_argument("--jsonl", action="store_true", required=True)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("simulate-call", help="play a whole call through the webhooks")
    p.add_argument("audio", nargs="*", help="one audio file per recorded question")
    p.add_argument("--station", required=True)
    p.add_argument("--url", default=None, help="a running app (default: start one in-process)")
    p.add_argument("--from", dest="from_number", default="+358401234567")
    p.add_argument(
        "--digits", nargs="*", help="keypad answers in order, e.g. 1 2 '#' (0-9, # and *)"
    )
    p.add_argument(
        "--as-heard",
        action="append",
        metavar="TEXT",
        help="answer a recorded question with these words instead of audio (demos, training: "
        "the case records the transcript as given, not recognised); repeat for more answers",
    )
    p.add_argument(
        "--hangup-after", type=int, default=None, help="hang up after this many webhooks"
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the case")
    p.set_defaults(func=cmd_simulate_call)

    p = sub.add_parser("signs", help="train or check the detector by meaning's classifier")
    p.add_argument("action", choices=["train", "check"])
    p.add_argument("--out", default=None, help="where to write it (default: the bundled file)")
    p.set_defaults(func=cmd_signs)

    p = sub.add_parser("eval-spoken", help="vignettes spoken by espeak-ng, over a phone line")
    p.add_argument("--cases", required=True, help="vignettes (JSON lines with id, lang, text)")
    p.add_argument("--out", required=True, help="folder for audio, transcripts, analysis")
    p.set_defaults(func=cmd_eval_spoken)

    p = sub.add_parser(
        "convert-model", help="a CTranslate2 Whisper model in openai-whisper or Hugging Face format"
    )
    p.add_argument("--to", required=True, choices=["openai", "hf"])
    p.add_argument("--model", help="CTranslate2 model directory (default: the bundled model)")
    p.add_argument("out", help="output: a .pt file (openai) or a directory (hf)")
    p.set_defaults(func=cmd_convert_model)

    p = sub.add_parser(
        "rotate-keys", help="seal all stored health text and recordings with the current key"
    )
    p.set_defaults(func=cmd_rotate_keys)

    p = sub.add_parser(
        "export-fhir", help="finished cases since a date as FHIR R4 Bundles, posted or to a file"
    )
    p.add_argument("--since", required=True, help="YYYY-MM-DD: cases that ended on or after it")
    p.add_argument("--out", help="write NDJSON here (one Bundle per line) instead of posting")
    p.set_defaults(func=cmd_export_fhir)

    p = sub.add_parser("stations", help="station settings: list, or load a stations file")
    p.add_argument("action", choices=["list", "load"])
    p.add_argument("file", nargs="?", help="stations YAML (see stations.example.yaml)")
    p.set_defaults(func=cmd_stations)

    p = sub.add_parser("users", help="staff accounts: list, or add one (e.g. the first admin)")
    p.add_argument("action", choices=["list", "add"])
    p.add_argument("--username")
    p.add_argument("--name", help="display name (default: the username)")
    p.add_argument("--role", choices=["nurse", "station_lead", "admin"], default="nurse")
    p.add_argument("--station", action="append", default=[], help="a station id (repeatable)")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin, not a prompt"
    )
    p.set_defaults(func=cmd_users)

    p = sub.add_parser(
        "eval-detectors", help="pretriage by the rules alone, the detector alone, and both"
    )
    p.add_argument("--cases", required=True, help="JSON lines with text, context and expect")
    p.set_defaults(func=cmd_eval_detectors)

    p = sub.add_parser(
        "eval-fuzzy", help="misheard-word matching: recall on slips and false hits on real words"
    )
    p.add_argument("--cases", help="vignettes (JSON lines): their texts count as clean speech")
    p.add_argument(
        "--transcripts", help="an eval-spoken output folder: what fuzzy matching adds there"
    )
    p.add_argument("--words", type=int, default=3000, help="dictionary words per language")
    p.set_defaults(func=cmd_eval_fuzzy)

    p = sub.add_parser("bench", help="performance benchmarks (one process, one core)")
    p.add_argument(
        "what", choices=["summarize", "triage", "analyze", "asr", "voicebot", "web", "region"]
    )
    p.add_argument("--file", help="JSON lines with text and context (default: dev vignettes)")
    p.add_argument("--seconds", type=float, default=3.0, help="how long to run")
    p.add_argument("--grid", action="store_true", help="asr: also the tuning variants")
    p.add_argument("--calls", type=int, default=50, help="voicebot: simultaneous calls")
    p.add_argument("--cases", type=int, default=1000, help="region: a month's calls per station")
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="region: on this PostgreSQL server (in a throwaway database) instead of SQLite",
    )
    p.add_argument(
        "--stt-servers",
        type=int,
        default=0,
        help="voicebot: transcribe on this many stt-serve processes (default: in the app)",
    )
    p.add_argument(
        "--database-url", default=None, help="voicebot: e.g. a PostgreSQL URL (default SQLite)"
    )
    p.add_argument(
        "--engines", help="asr: comma-separated engines (default: all three)", default=None
    )
    p.set_defaults(func=cmd_bench)
    return parser


def cmd_eval_spoken(args: argparse.Namespace) -> int:
    from esitieto.bench.spoken import EvaluationError, spoken_eval
    from summarizer.speech.audio import AudioError
    from summarizer.speech.stt import TranscriptionError

    try:
        figures = spoken_eval(Path(args.cases), Path(args.out), Settings())
    except (EvaluationError, AudioError, TranscriptionError, OSError, ValueError) as exc:
        return _fail(f"eval-spoken: {exc}")
    print(json.dumps({"eval": "spoken", "out": args.out, **figures}))
    return 0


def cmd_convert_model(args: argparse.Namespace) -> int:
    from summarizer.speech.bundled_model import ensure_bundled_model
    from summarizer.speech.convert import ConversionError, ct2_to_openai, openai_to_hf

    out = Path(args.out)
    try:
        ct2 = Path(args.model) if args.model else ensure_bundled_model(Settings().models_dir)
        if args.to == "openai":
            ct2_to_openai(ct2, out)
        else:
            tmp = out.with_name(out.name + ".openai.pt")
            try:
                openai_to_hf(ct2_to_openai(ct2, tmp), out, ct2_dir=ct2)
            finally:
                tmp.unlink(missing_ok=True)
    except (ConversionError, OSError) as exc:
        return _fail(f"convert-model: {exc}")
    print(json.dumps({"converted": str(ct2), "to": args.to, "out": str(out)}))
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from esitieto.rotation import rotate_keys
    from esitieto.runtime import Runtime
    from models.encryption import EncryptionError

    runtime = Runtime(Settings())
    try:
        runtime.db.migrate()
        report = rotate_keys(runtime.db, runtime.storage)
    except EncryptionError as exc:
        return _fail(f"{exc}: keep the old key in ESITIETO_ENCRYPTION__KEYS until this succeeds")
    finally:
        runtime.close()
    print(json.dumps({"current_key": runtime.settings.keyring.current, **asdict(report)}))
    return 0


def cmd_export_fhir(args: argparse.Namespace) -> int:
    from datetime import date

    from esitieto.fhir_export import export_since
    from esitieto.runtime import Runtime

    try:
        since = date.fromisoformat(args.since)
    except ValueError:
        return _fail("export-fhir: --since must be a date: YYYY-MM-DD")
    runtime = Runtime(Settings())
    if not args.out and runtime.fhir is None:
        return _fail("export-fhir: set ESITIETO_FHIR__BASE_URL, or give --out FILE")
    try:
        runtime.db.migrate()
        report = export_since(
            runtime.db,
            runtime.settings.fhir,
            runtime.settings.identity_key,
            since,
            out=Path(args.out) if args.out else None,
            client=runtime.fhir,
        )
    except OSError as exc:
        return _fail(f"export-fhir: {exc}")
    finally:
        runtime.close()
    print(json.dumps({"export": "fhir", **asdict(report)}))
    return 1 if report.failed else 0


def cmd_stations(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from esitieto.app import prepare
    from esitieto.runtime import Runtime
    from esitieto.stations import StationFileError, apply_stations, read_stations
    from models import Station
    from pretriage.service import StationConfigError, station_paths

    runtime = Runtime(Settings())
    try:
        if args.action == "load":
            if not args.file:
                return _fail("stations load: give the stations file")
            configs = read_stations(Path(args.file))
            runtime.db.migrate()
            with runtime.db.session() as session:
                changed = apply_stations(session, configs)
            print(json.dumps({"stations": "loaded", "ids": changed}))
            return 0
        prepare(runtime)
        with runtime.db.session() as session:
            for st in session.scalars(select(Station).order_by(Station.id)):
                row = {
                    "id": st.id,
                    "name": st.name,
                    "phone_number": st.phone_number,
                    "language": st.language,
                    "note_language": st.documentation_language,
                    "digital_paths": station_paths(st),
                }
                print(json.dumps(row, ensure_ascii=False))
        return 0
    except (StationFileError, StationConfigError) as exc:
        return _fail(str(exc))
    finally:
        runtime.close()


def cmd_users(args: argparse.Namespace) -> int:
    """Staff accounts from the command line: the way to make the first administrator."""
    import getpass

    from esitieto.accounts import AccountChange, AccountError, create_account, list_accounts
    from esitieto.runtime import Runtime
    from models import Role

    runtime = Runtime(Settings())
    try:
        runtime.db.migrate()
        if args.action == "list":
            with runtime.db.session() as session:
                for account in list_accounts(session):
                    print(json.dumps({
                        "username": account.username, "name": account.display_name,
                        "role": account.role, "stations": account.station_ids,
                        "active": account.is_active,
                    }, ensure_ascii=False))  # fmt: skip
            return 0
        if not args.username:
            return _fail("users add: give --username")
        password = (
            sys.stdin.readline().rstrip("\n")
            if args.password_stdin
            else getpass.getpass(f"Password for {args.username}: ")
        )
        change = AccountChange(
            display_name=args.name or args.username,
            role=Role(args.role),
            station_ids=args.station,
            password=password,
        )
        with runtime.db.session() as session:
            create_account(session, None, args.username, change)
        print(json.dumps({"user": args.username, "role": args.role, "stations": args.station}))
        return 0
    except AccountError as exc:
        from esitieto.web.i18n import messages
        from esitieto.web.staff import LIMITS

        return _fail(f"users add: {messages('en').staff_errors[exc.code].format(**LIMITS)}")
    finally:
        runtime.close()


def cmd_signs(args: argparse.Namespace) -> int:
    """``signs train``: learn the sign classifier from pretriage/signs/ for the configured
    embedding model; ``signs check``: does the classifier fit the data and the model?"""
    from pretriage.detector import (
        CLASSIFIER_FILE,
        DetectorError,
        build_embedder,
        load_detector,
        train_classifier,
    )
    from pretriage.signs import SignsError, default_signs

    settings = Settings().detector
    try:
        embedder = build_embedder(settings)
        if args.action == "check":
            load_detector(embedder, settings.classifier)
            print(json.dumps({"signs": "ok", "embedder": embedder.id}))
            return 0
        book = default_signs()
        out = Path(args.out) if args.out else (settings.classifier or CLASSIFIER_FILE)
        classifier = train_classifier(book, embedder)
        classifier.save(out)
    except (SignsError, DetectorError, OSError) as exc:
        return _fail(f"signs {args.action}: {exc}")
    figures = {"examples": len(book.examples), "categories": len(classifier.categories)}
    print(json.dumps({"signs": str(out), **figures, "embedder": embedder.id}))
    return 0


def cmd_eval_detectors(args: argparse.Namespace) -> int:
    from esitieto.bench.detectors import evaluate, table
    from pretriage.detector import DetectorError

    try:
        result = evaluate(Path(args.cases))
    except (DetectorError, OSError, ValueError, KeyError) as exc:
        return _fail(f"eval-detectors: {exc}")
    print(table(result), flush=True)
    print(json.dumps({"eval": "detectors", "cases": args.cases, **result}))
    return 0


def cmd_eval_fuzzy(args: argparse.Namespace) -> int:
    from esitieto.bench.fuzzy import evaluate

    try:
        figures = evaluate(
            Path(args.cases) if args.cases else None,
            Path(args.transcripts) if args.transcripts else None,
            args.words,
        )
    except (OSError, ValueError, KeyError) as exc:
        return _fail(f"eval-fuzzy: {exc}")
    print(json.dumps({"eval": "fuzzy", **figures}, ensure_ascii=False))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from esitieto.bench import throughput as bench

    if args.what == "asr":
        return _bench_asr(args)
    if args.what == "web":
        from esitieto.bench.web import run as run_web

        print(json.dumps({"bench": "web", **run_web()}))
        return 0
    if args.what == "region":
        from esitieto.bench.web import run_region

        figures = run_region(cases=args.cases, postgres=args.postgres)
        print(json.dumps({"bench": "region", **figures}))
        return 0
    if args.what == "voicebot":
        from esitieto.bench.voicebot import run, table

        result = run(args.calls, database_url=args.database_url, stt_servers=args.stt_servers)
        print(table(result), flush=True)
        print(json.dumps({"bench": "voicebot", **result}))
        return 0 if not result["error_count"] else 1
    path = Path(args.file) if args.file else bench.DEFAULT_TEXTS
    try:
        items = bench.load_texts(path)
    except (OSError, ValueError, KeyError) as exc:
        return _fail(f"bench: cannot read texts: {exc}")
    runner = {
        "summarize": bench.bench_summarize,
        "triage": bench.bench_triage,
        "analyze": bench.bench_analyze,
    }[args.what]
    cpu = bench.one_core()
    result = runner(items, args.seconds)
    print(json.dumps({"bench": args.what, "texts": len(items), "cpu": cpu, **result}))
    return 0


def _bench_asr(args: argparse.Namespace) -> int:
    from esitieto.bench.asr import BenchError, bench_asr, summary, table

    engines = tuple(e.strip() for e in args.engines.split(",")) if args.engines else None
    try:
        rows = bench_asr(Settings().data_dir, grid=args.grid, engines=engines)
    except (BenchError, OSError, subprocess.CalledProcessError) as exc:
        return _fail(f"bench asr: {exc}")
    print(table(rows), flush=True)
    print(json.dumps({"bench": "asr", **summary(rows)}, ensure_ascii=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.umask(0o077)  # whatever the service writes (database, recordings, models) is its own
    logging.basicConfig(
        level=Settings().log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl ..." on every start
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
