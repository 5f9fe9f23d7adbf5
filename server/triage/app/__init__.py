"""The ASGI app: routes and their handlers (`_app`), the gateway that carries a request through classification,
routing, the upstream call and accounting (`_gateway`), the embeddable middleware (`_middleware`), and the edges
every endpoint shares: request schemas, auth keys, rate limits and slots, HTTP errors, metrics, OpenAPI, the
learning endpoints, shutdown drain and the serving process's tuning; what instances share through Redis (`_redis`,
`_shared`), and traces (`_tracing`)."""

from triage.app._app import create_app, static_dir
from triage.app._auth import check_open_access, hash_key, is_loopback
from triage.app._gateway import Gateway, Routed
from triage.app._learning import parse_time
from triage.app._middleware import TriageMiddleware
from triage.app._serving import WORKER_CONFIG_ENV, FreezeAfterStartup, HeadWithBodyProtocol, tune_gc

__all__ = [
    "WORKER_CONFIG_ENV",
    "FreezeAfterStartup",
    "Gateway",
    "HeadWithBodyProtocol",
    "Routed",
    "TriageMiddleware",
    "check_open_access",
    "create_app",
    "hash_key",
    "is_loopback",
    "parse_time",
    "static_dir",
    "tune_gc",
]
