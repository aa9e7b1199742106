"""Finnish personal identity codes (henkilötunnus) keyed on a phone keypad, and sealing them.

Why this exists: a caller identifies themselves by keying the digits of their
henkilötunnus (DDMMYYCZZZQ). A keypad cannot type the century sign C, nor a letter
check character Q, so we get either DDMMYYZZZ (9 digits) or DDMMYYZZZQ (10 digits)
and must reconstruct the rest. The code is health/identity data: it never goes into
exception messages or logs, and it is stored only sealed with :class:`IdentityVault`.

Rules, each with its reason:

* Input: spaces (any whitespace) are removed; anything else that is not an ASCII digit,
  including the keypad's ``*`` and ``#``, is rejected (``not_digits``) because it cannot
  be part of the keyed code. Then exactly 9 or 10 digits are required (``length``).
* 10 digits: the last one is the check character and must match (``checksum``). If the
  computed check character is a letter, no tenth digit can be right (``checksum``).
  The result has ``checked=True``.
* 9 digits: the check character could not be keyed (a letter) or the caller stopped
  early (a digit). Both are accepted with ``checked=False`` and the check character is
  computed; the caller of this function decides whether unverified input is enough.
  A dropped or swapped digit is not detectable here, which is what ``checked`` says.
* Century: it cannot be keyed, so we choose it. Candidates are the 2000s, then the
  1900s (the 1800s sign ``+`` is never chosen: nobody living was born then). A
  candidate must be a real calendar date (leap years depend on the century: 29.2.00 is
  valid in 2000, not in 1900), not after ``today`` and at most 110 years old on
  ``today``. The first (youngest) candidate wins, so 01.01.05 is 2005, never 1905 —
  a genuine ambiguity for centenarians, resolved towards the far more common caller.
  No candidate → ``date``.
* Individual number ZZZ: 002–899 are ordinary; 900–999 are temporary identity codes and
  are accepted (:attr:`KeyedIdentity.temporary`); 000 and 001 are never issued
  (``individual_number``). Odd ZZZ is male, even is female.
* The reconstructed :attr:`KeyedIdentity.code` uses the primary century sign (``-`` for
  the 1900s, ``A`` for the 2000s). Since 2023 a code may carry an additional sign
  (``Y X W V U`` / ``B C D E F``) with the same digits and check character; the keypad
  cannot tell them apart, so compare codes on digits and check character, not on the sign.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "IdentityError",
    "IdentityVault",
    "KeyedIdentity",
    "Reason",
    "Sex",
    "check_character",
    "parse_keyed_identity",
]

Sex = Literal["female", "male"]
Reason = Literal["length", "not_digits", "date", "individual_number", "checksum", "sealed"]

CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
MAX_AGE_YEARS = 110
# Century candidates in order of preference (youngest first) with their primary sign.
_CENTURIES: tuple[tuple[int, str], ...] = ((2000, "A"), (1900, "-"))

# Fixed texts only: nothing derived from the keyed digits may end up in a message.
_MESSAGES: dict[Reason, str] = {
    "length": "the keyed identity code has the wrong number of digits",
    "not_digits": "the keyed identity code contains characters other than digits",
    "date": "the identity code's birth date is not a plausible date",
    "individual_number": "the identity code's individual number is not valid",
    "checksum": "the identity code's check digit does not match",
    "sealed": "the sealed identity code could not be opened "
    "(tampered, another call's token, wrong key or bad format)",
}


class IdentityError(ValueError):
    """A keyed or sealed identity code was rejected; ``reason`` is the machine code.

    The message is a fixed text per reason so the code itself never reaches logs.
    """

    reason: Reason

    def __init__(self, reason: Reason) -> None:
        super().__init__(_MESSAGES[reason])
        self.reason = reason

    def __reduce__(self) -> tuple[type[IdentityError], tuple[Reason]]:
        # args holds the message, not the reason: rebuild from the reason when unpickled.
        return (type(self), (self.reason,))


@dataclass(frozen=True)
class KeyedIdentity:
    """What a keyed identity code tells us.

    ``birth_date`` and ``code`` are left out of ``repr`` so that logging the object by
    accident does not log identity data.
    """

    birth_date: date = field(repr=False)
    sex: Sex
    # True only when a digit check character was keyed and matched.
    checked: bool
    # Canonical henkilötunnus with the primary century sign; see the module docstring.
    code: str = field(repr=False)

    @property
    def temporary(self) -> bool:
        """Individual numbers 900–999 are temporary codes, not a person's permanent one."""
        return self.code[7] == "9"

    def age_on(self, today: date) -> int:
        """Age in whole years on ``today``; a 29 February birthday counts on 1 March."""
        if today < self.birth_date:
            raise ValueError("the date is before the birth date")
        return _age(self.birth_date, today)


def check_character(digits: str) -> str:
    """The check character of DDMMYYZZZ (nine digits), as the population register defines it."""
    return CHECK_CHARACTERS[int(digits) % len(CHECK_CHARACTERS)]


_ASCII_DIGITS = re.compile(r"[0-9]*")


def _age(born: date, today: date) -> int:
    return today.year - born.year - int((today.month, today.day) < (born.month, born.day))


def _birth_date(day: int, month: int, yy: int, today: date) -> tuple[date, str] | None:
    """The youngest plausible birth date and its century sign, or None."""
    for century, sign in _CENTURIES:
        try:
            born = date(century + yy, month, day)
        except ValueError:
            continue  # e.g. 29 February in a century's non-leap year
        if born <= today and _age(born, today) <= MAX_AGE_YEARS:
            return born, sign
    return None


def parse_keyed_identity(digits: str, *, today: date) -> KeyedIdentity:
    """Parse the digits a caller keyed for their henkilötunnus (rules: module docstring).

    ``today`` is explicit because the century choice depends on it.
    Raises :class:`IdentityError` whose ``reason`` is ``not_digits``, ``length``, ``date``,
    ``individual_number`` or ``checksum``.
    """
    keyed = "".join(digits.split())
    if not _ASCII_DIGITS.fullmatch(keyed):
        raise IdentityError("not_digits")
    if len(keyed) not in (9, 10):
        raise IdentityError("length")

    found = _birth_date(int(keyed[0:2]), int(keyed[2:4]), int(keyed[4:6]), today)
    if found is None:
        raise IdentityError("date")
    born, sign = found

    individual = int(keyed[6:9])
    if individual < 2:
        raise IdentityError("individual_number")

    expected = check_character(keyed[:9])
    checked = len(keyed) == 10
    if checked and keyed[9] != expected:
        raise IdentityError("checksum")

    return KeyedIdentity(
        birth_date=born,
        sex="male" if individual % 2 else "female",
        checked=checked,
        code=f"{keyed[:6]}{sign}{keyed[6:9]}{expected}",
    )


_VERSION_PREFIX = "v1."
_TOKEN_BODY = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_NONCE_BYTES = 12  # the GCM standard nonce; random per seal, so never reused in practice
_TAG_BYTES = 16
# Domain separation: a v1 identity token cannot be confused with other data under the same key.
_AAD_PREFIX = b"esitieto/identity/v1\x00"


class IdentityVault:
    """Seals identity codes for storage ("stored encrypted"): AES-256-GCM.

    The context (e.g. the call id) is authenticated associated data, so a token copied
    into another call's row does not open. The key is never shown in ``repr``.
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise ValueError("the identity vault key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "IdentityVault(key=<hidden>)"

    @staticmethod
    def new_key() -> bytes:
        """A fresh random 32-byte key."""
        return AESGCM.generate_key(bit_length=256)

    @staticmethod
    def _aad(context: str) -> bytes:
        if not context:
            # An empty context would bind the token to nothing.
            raise ValueError("the sealing context must not be empty")
        return _AAD_PREFIX + context.encode("utf-8")

    def seal(self, code: str, *, context: str) -> str:
        """``"v1." + urlsafe-base64(nonce || ciphertext+tag)``, bound to ``context``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, code.encode("utf-8"), self._aad(context))
        return _VERSION_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, *, context: str) -> str:
        """The code sealed in ``token`` for ``context``.

        Raises ``IdentityError("sealed")`` on a bad format, tampering, another context or
        another key: the caller cannot (and should not) tell these apart.
        """
        aad = self._aad(context)
        body = token[len(_VERSION_PREFIX) :] if token.startswith(_VERSION_PREFIX) else None
        if body is None or not _TOKEN_BODY.fullmatch(body):
            raise IdentityError("sealed")
        try:
            raw = base64.b64decode(body, altchars=b"-_", validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise IdentityError("sealed")
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
        except InvalidTag:
            plain = None
        if plain is None:
            raise IdentityError("sealed")
        return plain.decode("utf-8")
