"""Connecting to the store's PostgreSQL: the pool with explicit timeouts, single connections (LISTEN, the head
versions' portal, `triage db upgrade`), and failures to connect turned into errors that name the setting.

The password is read from the env var `store.password_env` names and handed to asyncpg apart from the URL; no
message built here contains it (asyncpg's own are scrubbed of it too, in case a future version echoes it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from triage._config import StoreConfig
from triage._exceptions import ConfigError, StoreUnavailable

__all__ = ["TRANSIENT", "Conn", "connect", "create_pool", "describe", "is_transient", "setup_failure", "where"]

logger = logging.getLogger("triage.store")

# What a database that is restarting, failing over or unreachable raises: worth retrying, not the data's fault.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


_CONNECT_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, ValueError, *TRANSIENT)

# A connection of its own or one lent by the pool: the statements take either.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)


def where(config: StoreConfig) -> str:
    """host:port/database and user, for messages: never the password."""
    assert config.url is not None
    parts = urlsplit(config.url)
    user = f" as {parts.username}" if parts.username else ""
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}{user}"


def _kwargs(config: StoreConfig) -> dict[str, Any]:
    assert config.url is not None, "store.url is not set: the SQLite store is in use"
    password = config.password()
    kwargs: dict[str, Any] = {"dsn": config.url, "timeout": config.pool.connect,
                              "command_timeout": config.pool.command}
    if password is not None:
        kwargs["password"] = password.get_secret_value()
    return kwargs


def _scrub(text: str, config: StoreConfig) -> str:
    password = config.password()
    if password is not None and password.get_secret_value():
        text = text.replace(password.get_secret_value(), "***")
    return text


def describe(exc: BaseException, config: StoreConfig) -> str:
    """One line on why connecting failed, naming the settings to look at."""
    target = where(config)
    detail = _scrub(str(exc) or type(exc).__name__, config)
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        source = (f"the password comes from the env var {config.password_env} (store.password_env)"
                  if config.password_env else "no store.password_env is set")
        return f"store.url: PostgreSQL at {target} refused the login: {detail} ({source})"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"store.url: PostgreSQL at {target}: {detail} (create the database first)"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"store.url: no answer from PostgreSQL at {target} within {config.pool.connect:g} s (store.pool.connect)"
    if isinstance(exc, OSError):
        return f"store.url: cannot reach PostgreSQL at {target}: {detail}"
    return f"store.url: PostgreSQL at {target}: {type(exc).__name__}: {detail}"


def setup_failure(exc: BaseException, config: StoreConfig) -> ConfigError | StoreUnavailable:
    """At start-up a wrong setting is a ConfigError (the process exits naming it); a database that is only
    unreachable for now is a StoreUnavailable."""
    message = describe(exc, config)
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
                  | asyncpg.InvalidCatalogNameError | ValueError):
        return ConfigError(message)
    return StoreUnavailable(message)


async def connect(config: StoreConfig) -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await asyncpg.connect(**_kwargs(config))
    except _CONNECT_ERRORS as exc:
        raise setup_failure(exc, config) from None
    return conn


async def create_pool(config: StoreConfig) -> asyncpg.Pool:
    pool = config.pool
    try:
        created: asyncpg.Pool = await asyncpg.create_pool(
            **_kwargs(config), min_size=min(pool.min_size, pool.max_size), max_size=pool.max_size,
            # A connection idle this long is closed, so the pool shrinks back after a burst.
            max_inactive_connection_lifetime=60.0,
        )
    except _CONNECT_ERRORS as exc:
        raise setup_failure(exc, config) from None
    return created
