"""Keyed henkilötunnus parsing and sealing.

Every code here is synthetic: built in the test from a made-up date and individual
number with the check character computed, never a real person's code.
"""

from __future__ import annotations

import pickle
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.identity import (
    IdentityError,
    IdentityVault,
    KeyedIdentity,
    check_character,
    parse_keyed_identity,
)

TODAY = date(2025, 6, 15)
SIGNS = {1800: "+", 1900: "-", 2000: "A"}


def build(born: date, individual: int) -> str:
    """A synthetic henkilötunnus for ``born`` and ``individual`` with its check character."""
    head = f"{born:%d%m}{born.year % 100:02d}"
    number = f"{individual:03d}"
    return f"{head}{SIGNS[born.year // 100 * 100]}{number}{check_character(head + number)}"


def keyed(code: str) -> str:
    """What a keypad can carry: digits only, the check character only when it is a digit."""
    return code[:6] + code[7:10] + (code[10] if code[10].isdigit() else "")


def find(check: str, born: date) -> tuple[str, int]:
    """A synthetic code for ``born`` whose check character is a digit (``check="digit"``)
    or a letter (``check="letter"``)."""
    for individual in range(900, 1000):
        code = build(born, individual)
        if code[10].isdigit() == (check == "digit"):
            return code, individual
    raise AssertionError("no such individual number")


# --- parsing -------------------------------------------------------------------------


def test_the_register_s_published_example_check_character() -> None:
    # The population register's documentation example (not a person): 131052-308T.
    assert check_character("131052308") == "T"
    got = parse_keyed_identity("131052308", today=TODAY)
    assert got.code == "131052-308T"
    assert got.birth_date == date(1952, 10, 13)
    assert got.sex == "female"
    assert not got.checked


@pytest.mark.parametrize(
    "born", [date(1930, 1, 1), date(1999, 12, 31), date(2000, 1, 1), date(2024, 2, 29)]
)
def test_digit_check_character_is_verified(born: date) -> None:
    code, individual = find("digit", born)
    got = parse_keyed_identity(keyed(code), today=TODAY)
    assert len(keyed(code)) == 10
    assert got == KeyedIdentity(
        birth_date=born,
        sex="male" if individual % 2 else "female",
        checked=True,
        code=code,
    )
    assert got.temporary


@pytest.mark.parametrize("born", [date(1930, 1, 1), date(1999, 12, 31), date(2010, 7, 4)])
def test_letter_check_character_is_computed_from_nine_digits(born: date) -> None:
    code, _ = find("letter", born)
    assert code[10].isalpha()
    got = parse_keyed_identity(keyed(code), today=TODAY)
    assert len(keyed(code)) == 9
    assert got.code == code
    assert got.birth_date == born
    assert not got.checked


def test_nine_digits_of_a_digit_check_code_is_accepted_unchecked() -> None:
    code, _ = find("digit", date(1980, 3, 3))
    got = parse_keyed_identity(code[:6] + code[7:10], today=TODAY)
    assert got.code == code
    assert not got.checked


def test_spaces_are_ignored() -> None:
    code, _ = find("digit", date(1980, 3, 3))
    digits = keyed(code)
    spaced = f" {digits[:6]} {digits[6:9]}\t{digits[9]} "
    assert parse_keyed_identity(spaced, today=TODAY).code == code


def test_ordinary_individual_numbers_are_not_temporary() -> None:
    got = parse_keyed_identity("010190002", today=TODAY)
    assert not got.temporary
    assert got.code.startswith("010190-002")


@pytest.mark.parametrize(
    ("individual", "sex"),
    [(2, "female"), (3, "male"), (898, "female"), (899, "male"), (900, "female"), (999, "male")],
)
def test_sex_from_individual_number_parity(individual: int, sex: str) -> None:
    code = build(date(1990, 1, 1), individual)
    assert parse_keyed_identity(keyed(code), today=TODAY).sex == sex


# --- century choice -------------------------------------------------------------------


def _born(digits_ddmmyy: str, today: date) -> date:
    return parse_keyed_identity(digits_ddmmyy + "902", today=today).birth_date


def test_century_prefers_the_youngest_plausible_birth_date() -> None:
    assert _born("010105", TODAY) == date(2005, 1, 1)  # not 1905
    assert _born("150625", TODAY) == date(2025, 6, 15)  # born today
    assert _born("160625", TODAY) == date(1925, 6, 16)  # 2025-06-16 is tomorrow
    assert _born("010130", TODAY) == date(1930, 1, 1)
    assert _born("311299", TODAY) == date(1999, 12, 31)


def test_century_respects_the_age_limit() -> None:
    later = date(2115, 6, 1)
    assert _born("010106", later) == date(2006, 1, 1)  # 109 years old
    with pytest.raises(IdentityError) as err:
        _born("010104", later)  # 2004 is 111 years ago, 1904 even more
    assert err.value.reason == "date"


def test_leap_day_depends_on_the_century() -> None:
    assert _born("290200", TODAY) == date(2000, 2, 29)
    assert _born("290296", TODAY) == date(1996, 2, 29)
    # Before 2000 the only candidate is 1900, which was not a leap year.
    with pytest.raises(IdentityError) as err:
        _born("290200", date(1999, 12, 31))
    assert err.value.reason == "date"


# --- age ------------------------------------------------------------------------------


def test_age_around_birthdays() -> None:
    got = parse_keyed_identity("150690902", today=TODAY)
    assert got.age_on(date(2025, 6, 14)) == 34
    assert got.age_on(date(2025, 6, 15)) == 35
    assert got.age_on(date(2025, 6, 16)) == 35
    assert got.age_on(date(1990, 6, 15)) == 0
    with pytest.raises(ValueError):
        got.age_on(date(1990, 6, 14))


def test_leap_day_birthday_counts_on_first_of_march() -> None:
    got = parse_keyed_identity("290296902", today=TODAY)
    assert got.age_on(date(2025, 2, 28)) == 28
    assert got.age_on(date(2025, 3, 1)) == 29
    assert got.age_on(date(2024, 2, 29)) == 28


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "reason"),
    [
        ("", "length"),
        ("01019090", "length"),
        ("01019090212", "length"),
        ("010190*902", "not_digits"),
        ("010190902#", "not_digits"),
        ("010190-902", "not_digits"),
        ("0101909O2", "not_digits"),
        ("٠١٠١٩٠٩٠٢", "not_digits"),  # Arabic-Indic digits are not keypad digits
        ("000190902", "date"),
        ("320190902", "date"),
        ("310490902", "date"),
        ("011390902", "date"),
        ("290201902", "date"),  # neither 2001 nor 1901 is a leap year
        ("010190000", "individual_number"),
        ("010190001", "individual_number"),
    ],
)
def test_error_reasons(digits: str, reason: str) -> None:
    with pytest.raises(IdentityError) as err:
        parse_keyed_identity(digits, today=TODAY)
    assert err.value.reason == reason


def test_wrong_check_digit_is_a_checksum_error() -> None:
    code, _ = find("digit", date(1985, 5, 5))
    digits = keyed(code)
    wrong = digits[:9] + str((int(digits[9]) + 1) % 10)
    with pytest.raises(IdentityError) as err:
        parse_keyed_identity(wrong, today=TODAY)
    assert err.value.reason == "checksum"


def test_a_tenth_digit_for_a_letter_check_character_is_a_checksum_error() -> None:
    code, _ = find("letter", date(1985, 5, 5))
    for tenth in "0123456789":
        with pytest.raises(IdentityError) as err:
            parse_keyed_identity(keyed(code) + tenth, today=TODAY)
        assert err.value.reason == "checksum"


def test_errors_never_contain_the_digits() -> None:
    code, _ = find("digit", date(1985, 5, 5))
    digits = keyed(code)
    bad = [digits[:9] + str((int(digits[9]) + 1) % 10), digits[:8], "320185902", "010185001"]
    for attempt in [*bad, digits[:9] + "*"]:
        with pytest.raises(IdentityError) as err:
            parse_keyed_identity(attempt, today=TODAY)
        for text in (str(err.value), repr(err.value), *map(str, err.value.args)):
            assert not any(ch.isdigit() for ch in text), text
        assert err.value.__cause__ is None


def test_identity_repr_leaves_out_the_code_and_birth_date() -> None:
    got = parse_keyed_identity("150690902", today=TODAY)
    assert not any(ch.isdigit() for ch in repr(got))
    assert "checked=" in repr(got)


def test_error_pickles_with_its_reason() -> None:
    err = pickle.loads(pickle.dumps(IdentityError("checksum")))  # noqa: S301
    assert err.reason == "checksum"
    assert isinstance(err, ValueError)


# --- properties -----------------------------------------------------------------------

_birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)


def _plausible(born: date, today: date) -> list[date]:
    out = []
    for century in (1900, 2000):
        try:
            candidate = born.replace(year=century + born.year % 100)
        except ValueError:
            continue
        age = today.year - candidate.year - ((today.month, today.day) < (born.month, born.day))
        if candidate <= today and age <= 110:
            out.append(candidate)
    return out


@settings(max_examples=200, deadline=None)
@given(born=_birth_dates, individual=st.integers(min_value=2, max_value=999))
def test_keyed_digits_parse_back(born: date, individual: int) -> None:
    code = build(born, individual)
    got = parse_keyed_identity(keyed(code), today=TODAY)
    assert got.sex == ("male" if individual % 2 else "female")
    assert got.checked == code[10].isdigit()
    assert got.code[7:] == code[7:]  # same digits and check character
    plausible = _plausible(born, TODAY)
    if plausible == [born]:
        assert got.birth_date == born
        assert got.code == code
    else:
        # Ambiguous (or implausibly old): the younger reading wins.
        assert got.birth_date == max(plausible)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789*# -A", max_size=14) | st.text(max_size=14))
def test_any_input_either_parses_or_raises_identity_error(text: str) -> None:
    try:
        got = parse_keyed_identity(text, today=TODAY)
    except IdentityError as err:
        assert not any(ch.isdigit() for ch in str(err))
    else:
        assert got.birth_date <= TODAY
        assert len(got.code) == 11


# --- vault ----------------------------------------------------------------------------

CODE = build(date(2001, 1, 1), 902)


@pytest.fixture
def vault() -> IdentityVault:
    return IdentityVault(IdentityVault.new_key())


def test_vault_round_trip(vault: IdentityVault) -> None:
    token = vault.seal(CODE, context="call-1")
    assert token.startswith("v1.")
    assert CODE not in token
    assert vault.open(token, context="call-1") == CODE
    # A fresh nonce per seal: the same code does not give the same token.
    assert vault.seal(CODE, context="call-1") != token


def test_vault_rejects_another_context(vault: IdentityVault) -> None:
    token = vault.seal(CODE, context="call-1")
    with pytest.raises(IdentityError) as err:
        vault.open(token, context="call-2")
    assert err.value.reason == "sealed"


def test_vault_rejects_another_key(vault: IdentityVault) -> None:
    token = vault.seal(CODE, context="call-1")
    with pytest.raises(IdentityError):
        IdentityVault(IdentityVault.new_key()).open(token, context="call-1")


def test_vault_rejects_tampering(vault: IdentityVault) -> None:
    token = vault.seal(CODE, context="call-1")
    for i in range(3, len(token)):
        flipped = "B" if token[i] == "A" else "A"
        tampered = token[:i] + flipped + token[i + 1 :]
        with pytest.raises(IdentityError) as err:
            vault.open(tampered, context="call-1")
        assert err.value.reason == "sealed"
        assert not any(ch.isdigit() for ch in repr(err.value))


@pytest.mark.parametrize(
    "token", ["", "v1.", "v2.AAAA", "AAAA", "v1.not base64!", "v1.AAAA", "v1.A", "v1.+/+/"]
)
def test_vault_rejects_bad_format(vault: IdentityVault, token: str) -> None:
    with pytest.raises(IdentityError) as err:
        vault.open(token, context="call-1")
    assert err.value.reason == "sealed"


def test_vault_rejects_a_token_with_another_version(vault: IdentityVault) -> None:
    token = vault.seal(CODE, context="call-1")
    with pytest.raises(IdentityError):
        vault.open("v2." + token[3:], context="call-1")


@pytest.mark.parametrize("key", [b"", b"k" * 16, b"k" * 31, b"k" * 33, "k" * 32])
def test_vault_key_must_be_32_bytes(key: bytes) -> None:
    with pytest.raises(ValueError):
        IdentityVault(key)


def test_vault_needs_a_context(vault: IdentityVault) -> None:
    with pytest.raises(ValueError):
        vault.seal(CODE, context="")


def test_vault_repr_hides_the_key() -> None:
    key = IdentityVault.new_key()
    assert key.hex() not in repr(IdentityVault(key))
    assert len(key) == 32
    assert IdentityVault.new_key() != key


@pytest.mark.parametrize("context", ["call-1", "CA" + "f" * 32, "soitto-ääkköset"])
def test_vault_round_trip_for_various_contexts(vault: IdentityVault, context: str) -> None:
    assert vault.open(vault.seal(CODE, context=context), context=context) == CODE
