"""Shared fixtures. Each group below belongs to one part of the package; add new groups after the last."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
from harness import SimControl, gateway_config, run_triage
from servers import Postgres, Redis, running_postgres, running_redis

from triage.sim import BackgroundServer, create_sim_app

# --- simulated provider (triage.sim) ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sim() -> Iterator[BackgroundServer]:
    """One simulated provider on loopback for the whole session, with the default behaviour (20 ms to the first
    token, 200 tokens/s, 40 tokens). Use `sim_url` in tests: it resets the simulator first."""
    with BackgroundServer(create_sim_app()) as server:
        yield server


@pytest.fixture
def sim_url(sim: BackgroundServer) -> str:
    """The simulator's base URL (no `/v1`), with stats zeroed and per-model behaviours cleared for this test."""
    httpx.post(f"{sim.url}/sim/reset", params={"behaviours": "true"}).raise_for_status()
    return sim.url


@pytest.fixture(scope="session")
def sim_server(sim: BackgroundServer) -> BackgroundServer:
    """The session's simulator, by the name the gateway tests use."""
    return sim


@pytest.fixture
def sim_control(sim_url: str) -> SimControl:
    """The simulator's control endpoints, reset for this test."""
    return SimControl(sim_url)


# --- the gateway on the simulator (tests/harness.py) --------------------------------------------------------------


@pytest.fixture
def triage(sim_control: SimControl) -> Iterator[BackgroundServer]:
    """A fresh Triage (rules classifier, clean model health and metrics) in front of the session's simulator."""
    with run_triage(gateway_config(sim_control.url)) as server:
        yield server


@pytest.fixture
async def client(triage: BackgroundServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official openai client, pointed at `triage`."""
    async with openai.AsyncOpenAI(base_url=triage.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def sim_client(sim_server: BackgroundServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official openai client straight to the simulator, built like the gateway's pooled clients (aiohttp,
    no TLS context for plain HTTP)."""
    http_client = openai.DefaultAioHttpClient(verify=False)
    async with openai.AsyncOpenAI(
        base_url=sim_server.url + "/v1", api_key="not-needed", max_retries=0, http_client=http_client
    ) as client:
        yield client


# --- real PostgreSQL and Redis (tests/servers.py), for the shared store and limits ------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL cluster for the session, on loopback in a temporary directory. Use `pg_url` in tests."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """The URL (password included: tests only) of a new empty database for this test."""
    return postgres.create_database()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    with running_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: Redis) -> str:
    """The session's Redis, emptied for this test."""
    import redis as redis_py

    with redis_py.Redis.from_url(redis_server.url) as r:
        r.flushall()
    return redis_server.url
