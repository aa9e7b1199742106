"""A real OpenID Connect provider for the sign-in tests: panva/oidc-provider (OpenID
certified) on Node.js, from ``tests/peers/oidc-provider`` (``make install-test`` runs its
``npm ci``). The test chooses its issuer, its client and its accounts with their claims, and
keeps the provider's private signing key, so a test can also forge a token the provider
never issued."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import RSAKey

from tests.servers import free_port, wait_until_answers

HERE = Path(__file__).parent / "oidc-provider"


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    key: RSAKey
    """The provider's own signing key (private)."""


def signing_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


@contextmanager
def running_provider(
    accounts: Mapping[str, Mapping[str, Any]],
    redirect_uris: list[str],
    log_path: Path,
    *,
    post_logout_redirect_uris: list[str] = (),  # type: ignore[assignment]
    client_id: str = "esitieto",
    client_secret: str = "provider-test-secret",
) -> Iterator[Provider]:
    """The provider until the block ends; yields it once its discovery document answers."""
    node = shutil.which("node")
    assert node, "Node.js is needed for the OpenID provider (scripts/install-system-deps.sh)"
    assert (HERE / "node_modules" / "oidc-provider").is_dir(), (
        "the OpenID provider's packages are missing: run make install-test"
    )
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    key = signing_key(f"test-{port}")
    config = {
        "port": port,
        "issuer": issuer,
        "cookie_key": secrets.token_urlsafe(24),
        "jwks": {"keys": [key.as_dict(private=True)]},
        "clients": [
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": list(post_logout_redirect_uris),
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
        "accounts": accounts,
    }
    log = log_path.open("w")
    proc = subprocess.Popen(
        [node, str(HERE / "provider.mjs")],
        cwd=HERE,
        env={"PATH": "/usr/bin:/bin", "OIDC_CONFIG": json.dumps(config), "NODE_ENV": "test"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_answers(f"{issuer}/.well-known/openid-configuration", proc, log_path, 30)
        yield Provider(issuer, client_id, client_secret, key)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
