"""The extractor on sentences written for these tests (not the evaluation vignettes)."""

from __future__ import annotations

import pytest

from summarizer.text.extract import check_faithful, detect_language, summarize
from summarizer.text.numbers import word_number
from summarizer.text.schemas import CallContext, Evidence


def codes(text: str, **ctx: object) -> set[str]:
    return {s.icpc2 for s in summarize(text, CallContext(**ctx)).symptoms}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("kolmekymmentäkahdeksan", 38),
        ("kolkytkaheksan", 38),
        ("neljäkymmentä", 40),
        ("yksitoista", 11),
        ("kaks", 2),
        ("trettioåtta", 38),
        ("nittio", 90),
        ("thirty", 30),
        ("kaksikolme", None),
        ("kissa", None),
    ],
)
def test_spoken_numbers(word: str, value: int | None) -> None:
    assert word_number(word) == value


@pytest.mark.parametrize(
    ("text", "temperature"),
    [
        ("Kuumetta on ollut kolmekymmentäkahdeksan ja puoli.", 38.5),
        ("Lämpö oli aamulla 39 ja 2.", 39.2),
        ("Kuume 38,7 astetta.", 38.7),
        ("Jag har feber, trettioåtta komma sju.", 38.7),
        ("She has a fever of thirty eight point five.", 38.5),
        ("Kuumetta 37,5 illalla ja aamulla 39.", 39.0),
        ("Olen 38-vuotias ja minulla on yskää.", None),
        ("Kuumetta on ollut 39 päivää.", None),
        # a thermometer or a fever medicine makes the number a temperature too
        ("Mittasin peräsuolesta 38,3.", 38.3),
        ("Hon har haft 39,4 och Alvedon hjälper inte.", 39.4),
        ("Panadol tai ei, se on 39,1.", 39.1),
    ],
)
def test_temperature(text: str, temperature: float | None) -> None:
    assert summarize(text).temperature_c == temperature


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("Yskää on ollut toissapäivästä.", 2),
        ("Selkä on ollut kipeä kohta kuukauden.", 30),
        ("Kurkku on ollut kipeä viikon.", 7),
        ("Päänsärkyä kaksi viikkoa.", 14),
        ("I have had a cough since yesterday.", 1),
        ("The rash started this morning.", 0),
        ("Jag har haft ont i halsen i tre dagar.", 3),
        ("Haluaisin kysyä viime viikon tuloksista.", None),
        ("Vauva on kolmen kuukauden ikäinen ja yskii.", None),
        # quantities and bare units of more than one word
        ("My back has been hurting for a week.", 7),
        ("I have had a cough for a couple of days.", 2),
        ("Jag har hostat i ett par dagar.", 2),
        ("I have had a rash for a few days.", None),  # a few: no number
        ("I've had a cough for the past week.", 7),
        ("It has been going on for a month.", 30),
    ],
)
def test_duration(text: str, days: float | None) -> None:
    assert summarize(text).duration_days == days


def test_negation_scope_forward_backward_and_languages() -> None:
    s = summarize("Ei ole kuumetta eikä yskää, mutta kurkku on kipeä.")
    assert {x.icpc2 for x in s.negated_symptoms} == {"A03", "R05"}
    assert {x.icpc2 for x in s.symptoms} == {"R21"}
    s = summarize("Päänsärkyä on. Hengenahdistusta ei ole ollut.")
    assert {x.icpc2 for x in s.symptoms} == {"N01"}
    assert {x.icpc2 for x in s.negated_symptoms} == {"R02"}
    s = summarize("Jag har ont i halsen men inget feber.", CallContext(language="sv"))
    assert {x.icpc2 for x in s.symptoms} == {"R21"}
    assert "A03" in {x.icpc2 for x in s.negated_symptoms}
    s = summarize("I have a cough but no fever and no chest pain.", CallContext(language="en"))
    assert {x.icpc2 for x in s.symptoms} == {"R05"}
    assert {x.icpc2 for x in s.negated_symptoms} == {"A03", "A11"}


def test_words_that_say_not_are_the_symptom() -> None:
    assert "N18" in codes("Vasen käsi ei tottele ollenkaan.")
    assert "R02" in codes("En saa henkeä.")


def test_colloquial_and_inflected_forms() -> None:
    assert codes("Mulla on ollu kipee kurkku ja vähän yskittää.") >= {"R21", "R05"}
    assert codes("Maha on ihan sekaisin ja ripulia tulee.") >= {"D11"}
    assert codes("Pissatessa polttaa.") == {"U01"}


def test_for_whom_and_age() -> None:
    s = summarize("Viisivuotiaalla tytöllä on korvakipua.")
    assert (s.for_whom, s.age) == ("child", 5)
    s = summarize("Soitan äitini puolesta, hänellä on huimausta.")
    assert s.for_whom == "other"
    s = summarize("Minulla on yskää. Olen 67-vuotias.")
    assert (s.for_whom, s.age) == ("self", 67)
    s = summarize("My son is 25 years old and has a fever.", CallContext(language="en"))
    assert s.for_whom == "other"
    s = summarize("Olen raskaana ja odotan lasta kesäkuussa, nyt on päänsärkyä.")
    assert s.for_whom == "self" and s.pregnant is True


def test_requests_medicines_conditions_allergies() -> None:
    s = summarize("Pitäisi uusia Marevan-resepti. Minulla on eteisvärinä ja diabetes.")
    assert s.request == "prescription_renewal"
    assert "marevan" in s.medications
    assert set(s.conditions) == {"sydänsairaus", "diabetes"}
    s = summarize("Olen allerginen penisilliinille ja tarvitsen todistuksen.")
    assert s.request == "certificate"
    assert s.allergies == ["penisilliini"]


def test_fuzzy_match_catches_a_misheard_word_and_flags_it() -> None:
    s = summarize("Minulla on hengenahistusta.")
    r02 = [x for x in s.symptoms if x.icpc2 == "R02"]
    assert r02 and r02[0].fuzzy
    # guard: a short or unrelated word is not turned into a symptom
    assert codes("Minulla on kysymys laskusta.") == set()


def test_every_fact_is_grounded_and_faithfulness_check_drops_inventions() -> None:
    text = "Kuumetta 38,5 ja yskää kolme päivää. Käytän Buranaa."
    s = summarize(text)
    grounded = [x.evidence for x in [*s.symptoms, *s.negated_symptoms]]
    grounded += [x.evidence for x in s.findings] + [x.evidence for x in s.medication_facts]
    for e in grounded:
        assert text[e.start : e.end] == e.text
    for ev in s.evidence.values():
        assert text[ev.start : ev.end] == ev.text
    forged = s.model_copy(deep=True)
    forged.symptoms[0].evidence = Evidence(text="rintakipu", start=0, end=9)
    forged.evidence["temperature_c"] = Evidence(text="40", start=0, end=2)
    cleaned = check_faithful(forged, text)
    assert len(cleaned.symptoms) == len(s.symptoms) - 1
    assert cleaned.temperature_c is None


def test_note_says_what_was_not_told_and_uses_station_language() -> None:
    s = summarize("Kurkku on kipeä kaksi päivää.")
    assert "Lääkitys: ei kerrottu." in s.note
    assert s.note.splitlines()[1].startswith("Syy: Kurkkukipu 2 vrk")
    sv = summarize("Jag har ont i halsen.", CallContext(language="sv"), note_language="sv")
    assert "Medicinering: inte berättat." in sv.note


def test_language_detection() -> None:
    assert detect_language("Jag har ont i magen sedan igår") == "sv"
    assert detect_language("I have a sore throat and it is bad") == "en"
    assert detect_language("Mulla on kuumetta") == "fi"


def test_empty_text_gives_an_empty_but_valid_summary() -> None:
    s = summarize("")
    assert s.symptoms == [] and s.request == "other"
    assert "ei kerrottu" in s.note


def test_negation_ends_where_a_new_subject_starts() -> None:
    s = summarize("He can't lift his arm and his speech is slurred.", CallContext(language="en"))
    assert {"N18", "N19"} <= codes_of(s.symptoms)
    assert not s.negated_symptoms
    s = summarize("Ei kuumetta ja yskää ei ole ollut.")
    assert {"A03", "R05"} <= codes_of(s.negated_symptoms)


def test_a_term_that_says_not_is_not_denied_by_its_own_words() -> None:
    s = summarize("Mä en oo nukkunut kunnolla moneen viikkoon.")
    assert "P06" in codes_of(s.symptoms) and "P06" not in codes_of(s.negated_symptoms)
    s = summarize("Jag kan inte lyfta armen sedan i morse.", CallContext(language="sv"))
    assert "N18" in codes_of(s.symptoms)


def test_a_tenth_said_without_a_joiner() -> None:
    assert summarize("Lämpö on kolmekymmentäkahdeksan kolme.").temperature_c == 38.3
    assert summarize("Kuumetta oli 39 4 illalla.").temperature_c == 39.4
    s = summarize("Kuumetta 38 kolme päivää.")
    assert s.temperature_c == 38 and s.duration_days == 3


def test_an_age_is_not_a_duration() -> None:
    s = summarize("Min dotter är fem år och har feber sedan igår.", CallContext(language="sv"))
    assert s.age == 5 and s.for_whom == "child" and s.duration_days == 1


def test_the_unborn_baby_is_not_a_child_caller() -> None:
    s = summarize("Olen raskaana ja vauva ei ole liikkunut tänään.")
    assert s.for_whom == "self" and s.pregnant is True
    assert summarize("Vauvalla on kuumetta.").for_whom == "child"


def codes_of(symptoms: list) -> set[str]:
    return {s.icpc2 for s in symptoms}


@pytest.mark.parametrize(
    ("text", "sex", "for_whom"),
    [
        ("Olen 34-vuotias nainen ja virtsatessa kirvelee.", "female", "self"),
        ("Mä oon mies ja selkä on kipeä.", "male", "self"),
        ("Jag är en kvinna på 40 år och har feber.", "female", "self"),
        ("I'm a 30-year-old woman with a cough.", "female", "self"),
        # a partner or a relative is not the caller's own sex
        ("Mieheni on 50-vuotias ja hänellä on yskää.", None, "other"),
        ("My wife has a fever.", None, "other"),
        ("Olen soittanut eilen, yskää on.", None, "self"),
    ],
)
def test_sex_only_from_the_callers_words_about_themself(
    text: str, sex: str | None, for_whom: str
) -> None:
    s = summarize(text)
    assert (s.sex, s.for_whom) == (sex, for_whom)
    if sex is not None:
        e = s.evidence["sex"]
        assert text[e.start : e.end] == e.text


def test_a_keyed_identity_code_wins_over_the_words() -> None:
    s = summarize("Olen 34-vuotias nainen.", CallContext(sex="male"))
    assert s.sex == "male" and "sex" not in s.evidence


@pytest.mark.parametrize(
    "text",
    [
        "Jag är allergisk mot penicillin och har feber.",
        "Olen allerginen penisilliinille ja minulla on kuumetta.",
        "I'm allergic to penicillin and I have a fever.",
    ],
)
def test_an_allergen_is_not_also_a_medicine_taken(text: str) -> None:
    s = summarize(text)
    assert s.allergies and not s.medications


def test_a_nosebleed_on_warfarin_is_a_nosebleed_not_a_runny_nose() -> None:
    s = summarize("Käytän Warania ja nenä vuotaa verta.")
    assert [x.icpc2 for x in s.symptoms] == ["R06"] and s.medications == ["waran"]


@pytest.mark.parametrize(
    ("text", "present", "denied"),
    [
        # spoken "et" is "että" (that), not "you don't"
        ("Tyttö sanoo et pissatessa sattuu.", {"U01"}, set()),
        # "etten/enkä/eikä" read as en/ei inside a term
        ("Tuli semmonen olo etten saa henkeä.", {"R02"}, set()),
        ("Olen ahdistunut enkä saa unta.", {"P06"}, set()),
        # "and" + a clause with its own verb ends the negation
        ("Isä ei saa sanaa suustaan ja vasen käsi on voimaton.", {"N19", "N18"}, set()),
        ("He can't speak properly and his arm is weak.", {"N18"}, set()),
        # "ei oo ollu" looks back even when "eikä" follows
        ("Lämpöä ei oo ollu ollenkaan eikä hengästytä.", set(), {"A03", "R02"}),
        # Finland-Swedish "int"
        ("Jag har ont i halsen, int nån feber.", {"R21"}, {"A03"}),
    ],
)
def test_negation_in_spoken_language(text: str, present: set[str], denied: set[str]) -> None:
    s = summarize(text)
    assert present <= {x.icpc2 for x in s.symptoms}
    assert denied <= {x.icpc2 for x in s.negated_symptoms}
    assert not present & {x.icpc2 for x in s.negated_symptoms}


@pytest.mark.parametrize(
    ("text", "age", "age_months", "days"),
    [
        ("Viiden kuukauden vauvalla on kuumetta.", 0, 5, None),
        ("Vår bebis är sex veckor och har feber.", 0, 1, None),
        ("Seittemän viikon ikäsellä vauvalla on kuumetta.", 0, 1, None),
        ("Oon kuuskytviis ja mulla kirvelee virtsatessa.", 65, None, None),
        ("Jag är 70 och har hosta sedan två dagar.", 70, None, 2),
        ("Olen 38 asteen kuumeessa.", None, None, None),
    ],
)
def test_ages_said_without_an_age_word(
    text: str, age: int | None, age_months: int | None, days: float | None
) -> None:
    s = summarize(text)
    assert (s.age, s.age_months, s.duration_days) == (age, age_months, days)


@pytest.mark.parametrize(
    ("text", "temperature"),
    [
        ("Bebisen har feber, trettioåtta och en halv.", 38.5),
        ("Kuumetta kolmekymmentäkahdeksan ja puol.", 38.5),
        ("The fever was thirty-eight and a half.", 38.5),
    ],
)
def test_half_degrees_in_speech(text: str, temperature: float) -> None:
    assert summarize(text).temperature_c == temperature


@pytest.mark.parametrize(
    "text",
    [
        "I'm collecting my pills from the pharmacy tomorrow.",
        "Lääkepurkki on melkein tyhjä, pitäisi uusia resepti.",
        "The packet is empty and I need a new prescription.",
        "Please call me back, my daughter has a fever.",
        "Painan 90 kiloa ja verenpaine on koholla.",
        "Hostan har int slutat på två veckor.",
    ],
)
def test_everyday_words_raise_no_red_flag(text: str) -> None:
    assert summarize(text).red_flags == []


def test_an_antibiotic_by_its_generic_name_is_an_antibiotic() -> None:
    s = summarize("I'm on doxycycline for my acne and I need the prescription renewed.")
    assert s.medication_facts and "antibiotic" in s.medication_facts[0].categories


def test_hesitation_dots_do_not_cut_a_sentence_and_that_starts_a_new_clause() -> None:
    s = summarize("En... saa... henkeä... piippu ei... auta... kaveri sanoo et huulet on siniset.")
    assert "R02" in {x.icpc2 for x in s.symptoms}
    assert "cyanosis" in {f.id for f in s.findings if not f.negated}


def test_a_negation_ends_at_att() -> None:
    s = summarize("Hon kan int stå på benen och säger att hon ser dubbelt.")
    assert "vision_loss" in {f.id for f in s.findings if not f.negated}


def test_finland_swedish_spoken_numbers() -> None:
    assert summarize("I natt var febern trettionie komma sex.").temperature_c == 39.6


@pytest.mark.parametrize(
    ("text", "finding"),
    [
        ("His lips look bluish and he is gasping.", "cyanosis"),
        ("Han har feber och nacken är helt stel.", "stiff_neck"),
        ("She took a handful of pills an hour ago.", "overdose_poisoning"),
        ("His wrist is bent the wrong way after the fall.", "deformity"),
        ("Kuume ei laske vaikka otin lääkettä.", "high_fever_unresponsive"),
        ("Olen raskaana ja vauva on liikkunut tavallista vähemmän.", "fetal_movements_reduced"),
    ],
)
def test_lay_words_for_red_flags(text: str, finding: str) -> None:
    assert finding in {f.id for f in summarize(text).findings if not f.negated}


def test_one_sided_numb_arm_and_leg_is_a_limb_weakness() -> None:
    s = summarize("My left arm and leg went numb ten minutes ago.")
    assert "N18" in {x.icpc2 for x in s.symptoms}


def test_another_person_under_18_is_a_child() -> None:
    s = summarize("My 4-year-old daughter has been listless all day, she won't play.")
    assert (s.for_whom, s.age) == ("child", 4)
