"""Pretriage decisions on sentences written for these tests, and safety properties."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pretriage.analysis import analyze_text
from pretriage.schemas import URGENCY_RANK, TriageDecision
from summarizer.text.schemas import CallContext


def triage(text: str, **ctx: Any) -> TriageDecision:
    return analyze_text(None, text, CallContext(**ctx)).triage


ADULT: dict[str, Any] = {"age": 40, "sex": "female"}


def test_emergency_signs_go_to_the_nurse_queue_with_112_advice() -> None:
    for text in (
        "Minulla on kova rintakipu ja kylmä hiki.",
        "Äkkiä vasen käsi on voimaton ja puhe sammaltaa.",
        "Mieheni on tajuton eikä herää.",
        "Söin pähkinää ja nyt huulet turpoaa.",
        "I have crushing chest pain going down my arm.",
        "Han har kramper och svarar inte.",
    ):
        d = triage(text, **ADULT)
        assert (d.urgency, d.route, d.advise_112) == ("emergency", "nurse_queue", True), text
        assert d.reasons and d.reasons[0].evidence, text


def test_urgent_signs_and_reasons_quote_the_caller() -> None:
    d = triage("Vatsaan sattuu tosi kovasti ja kipu pahenee.", **ADULT)
    assert (d.urgency, d.route) == ("urgent", "nurse_queue")
    assert any("Vatsaan sattuu" in e for r in d.reasons for e in r.evidence)
    d = triage("Kuumetta 39,4 eikä laske Panadolilla.", **ADULT)
    assert d.urgency == "urgent"


def test_a_rash_is_not_urgent_but_a_swelling_tongue_after_a_sting_is_an_emergency() -> None:
    assert triage("Käsivarressa on kutiava ihottuma.", **ADULT).urgency == "non_urgent"
    assert triage("Mehiläinen pisti ja kieli turpoaa.", **ADULT).urgency == "emergency"


def test_digital_paths_and_their_blocks() -> None:
    d = triage("Kirvelee virtsatessa ja pitää käydä vessassa usein, alkoi eilen.", **ADULT)
    assert (d.route, d.digital_path) == ("digital_path", "uti")
    d = triage("Kirvelee virtsatessa. Haluan että hoitaja soittaa.", **ADULT)
    assert d.route == "callback"
    d = triage("Kirvelee virtsatessa.", age=40, sex="male")
    assert d.urgency == "urgent"  # urinary symptoms in a man
    d = triage("Kirvelee virtsatessa.", age=40)
    assert d.route == "callback"  # sex unknown: uti not eligible
    d = triage("Pitäisi uusia Tramal-resepti.", **ADULT)
    assert d.route == "callback"
    d = triage("Pitäisi uusia kolesterolilääkkeen resepti.", age=82, sex="male")
    assert (d.route, d.digital_path) == ("digital_path", "prescription-renewal")
    d = triage("Yskää ja nuhaa kolme päivää.", age=80, sex="female")
    assert d.route == "callback"


def test_station_can_switch_paths_off_and_set_links() -> None:
    from pretriage.engine import decide
    from summarizer.text.extract import summarize

    text = "Haluaisin perua huomisen ajan."
    ctx = CallContext(**ADULT)
    s = summarize(text, ctx)
    on = decide(s, text, ctx, enabled_paths={"appointment": "https://example.test/aika"})
    assert (on.route, on.sms_link) == ("digital_path", "https://example.test/aika")
    off = decide(s, text, ctx, enabled_paths={"uti": None})
    assert off.route == "callback"


def test_uncertainty_goes_to_a_human() -> None:
    from pretriage.engine import decide
    from summarizer.text.extract import summarize

    text = "Kirvelee virtsatessa ja pitää käydä vessassa usein."
    ctx = CallContext(**ADULT)
    s = summarize(text, ctx)
    assert decide(s, text, ctx).route == "digital_path"
    unsure = decide(s, text, ctx, asr_confidence=0.2)
    assert unsure.route == "callback"
    assert any(r.rule == "low-asr-confidence" for r in unsure.reasons)
    assert triage("", **ADULT).route == "callback"
    assert triage("Blaa blaa jotain epäselvää.", **ADULT).route == "callback"


def test_every_decision_records_the_ruleset_version() -> None:
    assert triage("Yskää.", **ADULT).ruleset_version


# -- properties ---------------------------------------------------------------------------------

COMPLAINTS = [
    "Minulla on yskää ja nuhaa.",
    "Kurkku on kipeä.",
    "Kirvelee virtsatessa.",
    "Pitäisi uusia verenpainelääkkeen resepti.",
    "Haluaisin perua huomisen ajan.",
    "Kysyisin verikokeiden tuloksia.",
    "Selkä on ollut kipeä viikon.",
    "Iholla on ihottumaa.",
    "",
]
EMERGENCY_SIGNS = [
    "Rintaan puristaa kovasti ja säteilee käteen.",
    "Huulet on sinertävät.",
    "Suupieli roikkuu.",
    "Hän on tajuton.",
    "Kieli turpoaa.",
    "Olen ottanut kaikki lääkkeet kerralla.",
]
URGENT_SIGNS = [
    "Rintakipua on vähän.",
    "On vaikea hengittää.",
    "Vatsakipu on kova.",
    "Haava on syvä ja ammottava.",
    "Minulla on itsetuhoisia ajatuksia.",
]
DENIED = [
    "Ei rintakipua.",
    "Hengenahdistusta ei ole.",
    "Ei ole itsetuhoisia ajatuksia.",
    "Kouristuksia ei ole ollut.",
]
contexts = st.builds(
    CallContext,
    age=st.one_of(st.none(), st.integers(0, 100)),
    sex=st.sampled_from([None, "female", "male"]),
)


@settings(max_examples=150, deadline=None)
@given(
    base=st.sampled_from(COMPLAINTS),
    sign=st.sampled_from(EMERGENCY_SIGNS + URGENT_SIGNS),
    ctx=contexts,
    before=st.booleans(),
)
def test_adding_a_sign_never_lowers_urgency(
    base: str, sign: str, ctx: CallContext, before: bool
) -> None:
    plain = analyze_text(None, base, ctx).triage
    text = f"{sign} {base}" if before else f"{base} {sign}"
    signed = analyze_text(None, text, ctx).triage
    assert URGENCY_RANK[signed.urgency] >= URGENCY_RANK[plain.urgency]
    floor = "emergency" if sign in EMERGENCY_SIGNS else "urgent"
    assert URGENCY_RANK[signed.urgency] >= URGENCY_RANK[floor]
    assert signed.route == "nurse_queue"


@settings(max_examples=100, deadline=None)
@given(base=st.sampled_from(COMPLAINTS), denied=st.sampled_from(DENIED), ctx=contexts)
def test_a_denied_symptom_never_fires_a_rule(base: str, denied: str, ctx: CallContext) -> None:
    plain = analyze_text(None, base, ctx).triage
    with_denial = analyze_text(None, f"{base} {denied}", ctx).triage
    assert with_denial.urgency == plain.urgency

    def signs(d: TriageDecision) -> set[str]:
        return {r.rule for r in d.reasons if r.rule[:1] in "EU" and r.rule[1:2].isdigit()}

    assert signs(with_denial) == signs(plain)


@settings(max_examples=100, deadline=None)
@given(base=st.sampled_from(COMPLAINTS), ctx=contexts, pressed=st.booleans())
def test_asking_for_a_nurse_never_gets_a_digital_path(
    base: str, ctx: CallContext, pressed: bool
) -> None:
    if pressed:
        ctx = ctx.model_copy(update={"wants_nurse": True})
        text = base
    else:
        text = f"{base} Haluan puhua hoitajan kanssa."
    assert analyze_text(None, text, ctx).triage.route != "digital_path"


@settings(max_examples=100, deadline=None)
@given(
    base=st.sampled_from([*COMPLAINTS[:3], "Kurkku on kipeä ja nenä tukossa."]),
    age=st.one_of(st.none(), st.integers(0, 17)),
    child=st.sampled_from(["Lapsella", "Tytöllä", "Pojalla", "Vauvalla"]),
)
def test_a_child_never_gets_an_adult_only_path(base: str, age: int | None, child: str) -> None:
    text = f"{child} on oireita. {base}"
    d = analyze_text(None, text, CallContext(age=age, sex="female")).triage
    assert d.digital_path not in ("uti", "respiratory-infection")
