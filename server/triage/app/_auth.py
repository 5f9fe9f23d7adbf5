"""Client keys and roles. Keys are stored as SHA-256 digests (in the config, or read from an env var at start),
so the config file holds no usable secret. Roles nest: client < reviewer < admin.

With no keys configured Triage runs open (every caller is `anonymous` with every role); `create_app` allows
that only on a loopback address and says so at start-up.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection

from triage._config import AuthConfig, TriageConfig
from triage._exceptions import AuthenticationError, ConfigError, PermissionDenied

__all__ = ["ANONYMOUS", "Caller", "KeyRing", "Role", "check_open_access", "hash_key", "is_loopback"]

logger = logging.getLogger("triage")

Role = Literal["client", "reviewer", "admin"]
_RANK: dict[str, int] = {"client": 0, "reviewer": 1, "admin": 2}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    role: Role
    rate_per_minute: float | None = None
    max_streams: int | None = None

    def require(self, role: Role) -> None:
        if _RANK[self.role] < _RANK[role]:
            raise PermissionDenied(f"this endpoint needs a {role} key; key {self.key_id!r} is a {self.role} key",
                                   code="insufficient_role")


ANONYMOUS = Caller("anonymous", "admin")


class KeyRing:
    def __init__(self, config: AuthConfig) -> None:
        self._by_digest: dict[str, Caller] = {}
        for key in config.keys:
            digest = key.sha256
            if key.key_env is not None:
                value = os.environ.get(key.key_env)
                if not value:
                    raise ConfigError(f"auth.keys[{key.id}].key_env: env var {key.key_env!r} is not set")
                digest = hash_key(value)
            assert digest is not None  # the config validator demands one of sha256 / key_env
            self._by_digest[digest.lower()] = Caller(key.id, key.role, key.rate_per_minute, key.max_streams)

    @property
    def open(self) -> bool:
        return not self._by_digest

    def authenticate(self, connection: HTTPConnection) -> Caller:
        """The caller behind a request's `Authorization: Bearer <key>` (or `x-api-key`) header."""
        if self.open:
            return ANONYMOUS
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else connection.headers.get("x-api-key", "").strip()
        if not key:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        # Looking up the digest, not the key, keeps the comparison independent of the key's bytes.
        caller = self._by_digest.get(hash_key(key))
        if caller is None:
            raise AuthenticationError("invalid API key", code="invalid_api_key")
        return caller


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) is reachable only from this machine."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_open_access(config: TriageConfig, host: str) -> None:
    """With no client keys Triage is open to anyone who can reach it: allowed on loopback only."""
    if not config.auth.keys:
        if not is_loopback(host):
            raise ConfigError(
                f"auth.keys is empty (open access, allowed on loopback only) but the host is {host!r}: configure "
                "client keys, or bind to 127.0.0.1"
            )
        logger.warning("no client keys configured: open access, bound to loopback (%s) only", host)
