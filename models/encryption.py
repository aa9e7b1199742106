"""Health data encrypted at rest: AES-256-GCM with a keyring from settings.

Transcripts, the words given for recordings and the summaries' text are stored encrypted in
the database (:class:`EncryptedText`, :class:`EncryptedJSON`), and recordings in their files
(``integrations/storage.py``). Every value carries the id of the key that sealed it, so keys
can be rotated: put a new key first in ``ESITIETO_ENCRYPTION__KEYS``, run
``esitieto rotate-keys`` (which seals everything again with it), then drop the old key.

The keyring belongs to one database engine (it is attached to the engine's dialect by
``esitieto/db.py``), not to the process, so two databases with two keyrings never mix. An
engine without a keyring (a bare migration) reads and writes plain values; values written
before encryption existed are read as they are and sealed by the next rotation.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text, TypeDecorator
from sqlalchemy.engine import Dialect

TEXT_PREFIX = "enc1:"
"""Marks an encrypted database value: ``enc1:`` + base64 of the sealed bytes."""
FILE_MAGIC = b"ESITIETO-ENC1\n"
"""Starts an encrypted file (audio never starts so: WAV is ``RIFF``, MP3 ``ID3`` or 0xFF)."""
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
NONCE_BYTES = 12


class EncryptionError(Exception):
    """A value cannot be sealed or opened: a missing or wrong key, or damaged data."""


@dataclass(frozen=True)
class Keyring:
    """The current key (seals) and older keys (only open what they sealed)."""

    current: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """``"id:hex64,id:hex64"``: the first key is current; each is 32 bytes as hex."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            kid, _, hexkey = part.partition(":")
            if not _KEY_ID.fullmatch(kid):
                raise EncryptionError(f"encryption key id {kid!r}: letters, digits, - and _ only")
            try:
                key = bytes.fromhex(hexkey)
            except ValueError:
                key = b""
            if len(key) != 32:
                raise EncryptionError(f"encryption key {kid!r} must be 64 hex digits (32 bytes)")
            if kid in keys:
                raise EncryptionError(f"encryption key id {kid!r} given twice")
            keys[kid] = key
            order.append(kid)
        if not order:
            raise EncryptionError("no encryption key given")
        return cls(current=order[0], keys=keys)

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        kid = self.current.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, context)
        return bytes([len(kid)]) + kid + nonce + sealed

    def open(self, blob: bytes, context: bytes = b"") -> bytes:
        try:
            n = blob[0]
            kid = blob[1 : 1 + n].decode()
            nonce = blob[1 + n : 1 + n + NONCE_BYTES]
            sealed = blob[1 + n + NONCE_BYTES :]
        except (IndexError, UnicodeDecodeError) as exc:
            raise EncryptionError("damaged encrypted value") from exc
        key = self.keys.get(kid)
        if key is None:
            raise EncryptionError(f"no encryption key {kid!r} configured (rotated away?)")
        try:
            return AESGCM(key).decrypt(nonce, sealed, context)
        except InvalidTag as exc:
            raise EncryptionError(f"encrypted value does not open with key {kid!r}") from exc

    def key_id_of(self, blob: bytes) -> str:
        return blob[1 : 1 + blob[0]].decode(errors="replace") if blob else ""

    # -- text values (database columns) --------------------------------------------------------

    def seal_text(self, text: str) -> str:
        return TEXT_PREFIX + base64.b64encode(self.seal(text.encode())).decode("ascii")

    def open_text(self, value: str) -> str:
        if not value.startswith(TEXT_PREFIX):
            return value  # written before encryption: sealed by the next rotation
        return self.open(base64.b64decode(value[len(TEXT_PREFIX) :])).decode()

    # -- files -----------------------------------------------------------------------------

    def seal_file(self, data: bytes, name: str) -> bytes:
        return FILE_MAGIC + self.seal(data, context=name.encode())

    def open_file(self, data: bytes, name: str) -> bytes:
        if not data.startswith(FILE_MAGIC):
            return data  # stored before encryption
        return self.open(data[len(FILE_MAGIC) :], context=name.encode())


def attach(dialect: Dialect, keyring: Keyring | None) -> None:
    """Give an engine's dialect the keyring its encrypted columns use."""
    dialect.esitieto_keyring = keyring  # type: ignore[attr-defined]


def keyring_of(dialect: Dialect) -> Keyring | None:
    return getattr(dialect, "esitieto_keyring", None)


def text_key_id(value: str) -> str:
    """The id of the key that sealed a stored value ("" when it is plain)."""
    if not value.startswith(TEXT_PREFIX):
        return ""
    blob = base64.b64decode(value[len(TEXT_PREFIX) :])
    return blob[1 : 1 + blob[0]].decode(errors="replace")


class EncryptedText(TypeDecorator[str]):
    """A text column stored sealed with the engine's keyring."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        keyring = keyring_of(dialect)
        if value is None or keyring is None:
            return value
        return keyring.seal_text(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        keyring = keyring_of(dialect)
        if value is None or keyring is None:
            return value
        return keyring.open_text(value)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON value stored as sealed text with the engine's keyring."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        text = json.dumps(value, ensure_ascii=False)
        keyring = keyring_of(dialect)
        return keyring.seal_text(text) if keyring is not None else text

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        keyring = keyring_of(dialect)
        if keyring is not None:
            value = keyring.open_text(value)
        return json.loads(value)
