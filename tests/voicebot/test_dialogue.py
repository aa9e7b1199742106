"""The dialogue state machine on its own: every branch, in microseconds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicebot.dialogue import (
    COUNTING,
    MAX_FOLLOW_UPS,
    Answers,
    Assessment,
    State,
    advance,
    after_recording,
    decide_next,
    identity_result,
    keyed_number,
    keyed_temperature,
    prompt_for,
)
from voicebot.prompts import LANGUAGES, catalogue

ASKING = [s for s in State if s not in (State.DONE, State.ASSESS, State.REASON, *COUNTING)]


@pytest.mark.parametrize("state", ASKING)
def test_nine_repeats_every_question(state: State) -> None:
    answers = Answers(feedback_question="useful")
    assert advance(state, "9", answers) == prompt_for(state, answers)


@pytest.mark.parametrize("state", [s for s in ASKING if s is not State.FEEDBACK])
def test_zero_always_reaches_a_nurse(state: State) -> None:
    answers = Answers()
    step = advance(state, "0", answers)
    assert step.transfer == "normal" and answers.wants_nurse
    closed = advance(state, "0", Answers(), closed=True)
    assert closed.transfer is None and closed.state is State.CONFIRM_CALLBACK  # next opening


def test_zero_and_nine_are_answers_where_years_or_days_are_asked() -> None:
    answers = Answers(for_whom="child")
    assert advance(State.ASK_CHILD_AGE, "0", answers).redirect is State.ASSESS
    assert answers.child_age == 0 and not answers.wants_nurse
    advance(State.ASK_DURATION, "9", answers)
    assert answers.duration_days == 9.0


def test_silence_is_asked_once_more_then_the_call_goes_on() -> None:
    answers = Answers()
    first = advance(State.EMERGENCY, None, answers)
    assert first.state is State.EMERGENCY
    second = advance(State.EMERGENCY, None, answers)
    assert second.state is State.IDENTITY and answers.emergency_key is None


def test_language_menu_and_default() -> None:
    answers = Answers(language="fi")
    advance(State.WELCOME, "2", answers)
    assert answers.language == "sv"
    silent = Answers(language="sv")
    advance(State.WELCOME, None, silent)
    advance(State.WELCOME, None, silent)
    assert silent.language == "sv"  # the station's own language stays


def test_emergency_key_comes_before_any_other_question() -> None:
    answers = Answers()
    step = advance(State.EMERGENCY, "1", answers)
    assert "emergency_112" in step.say and step.transfer == "priority"
    assert answers.outcome == "emergency" and not answers.follow_ups


def test_an_emergency_heard_in_the_words_wins_over_missing_facts() -> None:
    answers = Answers()
    step = decide_next(
        answers,
        Assessment("emergency", "nurse_queue", missing=("who", "duration")),
        closed=False,
        feedback_question="useful",
    )
    assert step.transfer == "priority" and step.say[0] == "emergency_112"
    assert answers.follow_ups == []


@pytest.mark.parametrize("urgency", [None, "urgent"])
def test_late_or_unsure_or_urgent_goes_to_a_nurse_never_a_digital_path(urgency: str | None) -> None:
    answers = Answers()
    step = decide_next(answers, Assessment(urgency, None), closed=False, feedback_question="useful")  # type: ignore[arg-type]
    assert step.transfer is not None and answers.outcome == "nurse_queue"


def test_at_most_three_follow_ups_then_the_outcome() -> None:
    answers = Answers()
    missing = ("who", "child_age", "duration", "temperature")
    asked = []
    for _ in range(6):
        step = decide_next(
            answers,
            Assessment("non_urgent", "callback", missing=missing),
            closed=False,
            feedback_question="useful",
        )
        if step.state is State.CONFIRM_CALLBACK:
            break
        asked.append(step.state)
    assert len(asked) == MAX_FOLLOW_UPS
    assert asked == [State.ASK_WHO, State.ASK_CHILD_AGE, State.ASK_DURATION]


def test_the_digital_path_can_be_refused_for_a_callback() -> None:
    answers = Answers()
    offer = decide_next(
        answers,
        Assessment("non_urgent", "digital_path", digital_path="uti"),
        closed=False,
        feedback_question="useful",
    )
    assert offer.state is State.OFFER_SMS
    refused = advance(State.OFFER_SMS, "2", answers)
    assert refused.state is State.CONFIRM_CALLBACK and answers.outcome == "callback"
    other = advance(State.CONFIRM_CALLBACK, "2", answers)
    assert other.state is State.CALLBACK_NUMBER
    done = advance(State.CALLBACK_NUMBER, "0401234567", answers)
    assert done.state is State.FEEDBACK and answers.callback_number == "+358401234567"


def test_accepting_the_sms_and_answering_feedback() -> None:
    answers = Answers()
    decide_next(
        answers,
        Assessment("non_urgent", "digital_path", digital_path="uti"),
        closed=False,
        feedback_question="recommend",
    )
    step = advance(State.OFFER_SMS, "1", answers, feedback_question="recommend")
    assert answers.sms_accepted and step.say == ("sms_sent", "feedback_recommend")
    end = advance(State.FEEDBACK, "1", answers)
    assert end.hangup and answers.feedback_answer == 1


def test_identity_wrong_once_asked_again_then_skipped() -> None:
    answers = Answers()
    again = identity_result(answers, False)
    assert again.state is State.IDENTITY and again.say == ("identity_again",)
    on = identity_result(answers, False)
    assert on.state is State.REASON and not answers.identity_given


def test_no_recording_still_goes_to_assessment() -> None:
    step = after_recording(Answers(), recorded=False)
    assert step.redirect is State.ASSESS and "no_answer_heard" in step.say


@pytest.mark.parametrize(
    ("digits", "value"),
    [("385", 38.5), ("39", 39.0), ("3850", 38.5), ("12", None), ("", None), ("4x", None)],
)
def test_keyed_temperature(digits: str, value: float | None) -> None:
    assert keyed_temperature(digits) == value


@pytest.mark.parametrize(
    ("digits", "number"),
    [("0401234567", "+358401234567"), ("00467012345", "+467012345"), ("12", None)],
)
def test_keyed_number(digits: str, number: str | None) -> None:
    assert keyed_number(digits) == number


@given(st.lists(st.sampled_from(["", "1", "2", "3", "9", "#", "5"]), max_size=40))
def test_any_keypresses_end_the_call_without_error(presses: list[str]) -> None:
    """Whatever the caller presses, each step is a valid one and the call can end."""
    answers = Answers()
    state = State.WELCOME
    for digits in presses:
        if state in (State.DONE, State.ASSESS, State.REASON):
            break
        step = advance(state, digits or None, answers, feedback_question="useful")
        state = step.redirect or step.state
    assert state in State


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_prompt_of_every_state_exists_in_every_language(language: str) -> None:
    cat = catalogue(language)
    answers = Answers(feedback_question="understandable", confirm_sign="E1", language=language)
    for state in State:
        step = prompt_for(state, answers, closed=True)
        for key in step.say:
            if key != "language_menu":
                assert cat.text(
                    key, station="X", window="Y", service="Z", urgent_line="1", **step.values
                )


POSSIBLE_E1 = Assessment(urgency="urgent", route="nurse_queue", confirm_sign="E1")


@pytest.mark.parametrize("closed", [False, True])
def test_a_possible_emergency_sign_is_asked_once_by_name(closed: bool) -> None:
    answers = Answers(language="fi")
    step = decide_next(answers, POSSIBLE_E1, closed=closed, feedback_question="useful")
    assert step.state is State.CONFIRM_SIGN and step.gather == "digit"
    assert step.values["question"]  # the sign's own question, from signs.yaml
    yes = advance(State.CONFIRM_SIGN, "1", answers, closed=closed)
    assert answers.outcome == "emergency" and "emergency_112" in yes.say
    assert (yes.transfer == "priority") is not closed and yes.hangup is closed


def test_no_to_a_possible_sign_keeps_what_the_words_give_and_is_not_asked_again() -> None:
    answers = Answers(language="fi")
    decide_next(answers, POSSIBLE_E1, closed=False, feedback_question="useful")
    no = advance(State.CONFIRM_SIGN, "2", answers)
    assert no.redirect is State.ASSESS and answers.sign_confirmed is False
    again = decide_next(answers, POSSIBLE_E1, closed=False, feedback_question="useful")
    assert again.transfer == "priority" and answers.outcome == "nurse_queue"


def test_urgent_after_hours_offers_the_urgent_line_never_a_callback() -> None:
    answers = Answers(language="fi")
    urgent = Assessment(urgency="urgent", route="nurse_queue")
    step = decide_next(answers, urgent, closed=True, feedback_question="useful")
    assert step.state is State.URGENT_LINE and answers.outcome == "urgent_line"
    assert "callback_window" not in step.say
    dial = advance(State.URGENT_LINE, "1", answers, closed=True)
    assert dial.dial_urgent_line and dial.state is State.DONE
    told = advance(State.URGENT_LINE, "2", Answers(outcome="urgent_line"), closed=True)
    assert told.hangup and "call_urgent_line" in told.say and not told.dial_urgent_line


def test_not_understood_reaches_a_nurse_never_a_digital_path() -> None:
    answers = Answers(language="fi")
    unsure = Assessment(urgency=None, route=None)
    open_ = decide_next(answers, unsure, closed=False, feedback_question="useful")
    assert open_.transfer == "normal" and answers.outcome == "nurse_queue"
    closed = decide_next(Answers(), unsure, closed=True, feedback_question="useful")
    assert closed.state is State.CONFIRM_CALLBACK  # nobody in: the first opening, a nurse
