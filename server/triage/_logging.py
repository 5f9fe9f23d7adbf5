"""Log lines: plain text by default, one JSON object a line with `--log-format json` (`server.log_format`).

Each JSON line carries the request id of the request it was logged for (`request_id_var`, set by the gateway as a
request begins; asyncio copies it into the tasks the request starts), so a log search joins up with
`x-triage-request-id` and the decision record. Messages stay what they are in text form: lengths and ids, never
prompts, completions or secrets (STYLE.md 14).
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any, Literal

__all__ = ["TEXT_FORMAT", "JSONFormatter", "configure_logging", "log_config", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("triage_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LogFormat = Literal["text", "json"]


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def log_config(level: str, fmt: LogFormat) -> dict[str, Any]:
    """A `logging.config.dictConfig` for Triage and uvicorn alike (uvicorn applies it in every worker it starts)."""
    formatter: dict[str, Any] = (
        {"()": "triage._logging.JSONFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "triage", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"triage": formatter},
        "handlers": {"triage": handler},
        "root": {"handlers": ["triage"], "level": level.upper()},
        # uvicorn's loggers go through the same handler (and format) instead of their own.
        "loggers": {
            name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(level: str, fmt: LogFormat) -> None:
    import logging.config

    logging.config.dictConfig(log_config(level, fmt))
