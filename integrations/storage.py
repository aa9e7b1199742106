"""Where recordings live: a small interface so an object store can replace local files.

Recordings are health data: with a keyring each file is sealed (AES-256-GCM, the storage
key as associated data, so a file cannot be swapped for another call's)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from models.encryption import Keyring

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool: ...


class LocalFileStorage:
    """Files under a root directory; writes are atomic so a crash never leaves half a file."""

    def __init__(self, root: Path, keyring: Keyring | None = None) -> None:
        self.root = root
        self.keyring = keyring
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)  # recordings are health data: the service's own, nobody else's

    def _path(self, key: str) -> Path:
        if not _SAFE_KEY.match(key) or ".." in key.split("/"):
            raise ValueError("invalid storage key")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self.keyring is not None:
            data = self.keyring.seal_file(data, key)
        for folder in reversed([p for p in path.relative_to(self.root).parents if p.parts]):
            (self.root / folder).mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        data = self._path(key).read_bytes()
        return self.keyring.open_file(data, key) if self.keyring is not None else data

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> bool:
        """Remove the file; False when there was none."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True
