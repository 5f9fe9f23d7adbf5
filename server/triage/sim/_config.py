"""What a simulated model does: its behaviour (speed, length, faults), the simulator's config, and loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triage._exceptions import ConfigError

__all__ = ["SimBehaviour", "SimConfig", "load_sim_config"]


class SimBehaviour(BaseModel):
    """How the simulator answers one model. Fault positions count streamed payload chunks (content or tool-call
    argument pieces); a position past the end applies just before the final chunk."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = Field(default=20.0, ge=0)
    tokens_per_s: float = Field(default=200.0, ge=0, description="0: as fast as possible")
    completion_tokens: int = Field(default=40, ge=0, description="length of generated text answers")
    status: int | None = Field(
        default=None, ge=400, le=599, description="answer with this error status, before any stream"
    )
    retry_after: float | None = Field(default=None, ge=0, description="`retry-after` header sent with `status`")
    fail_first: int = Field(default=0, ge=0, description="only the first N requests fail (with `status`, else 500)")
    cut_after: int | None = Field(default=None, ge=0, description="drop the connection after N chunks")
    stall_after: int | None = Field(default=None, ge=0, description="pause `stall_s` after N chunks, then go on")
    stall_s: float = Field(default=30.0, ge=0)
    malformed_after: int | None = Field(
        default=None, ge=0, description="send `data: {not json` after N chunks, then go on"
    )
    linger_s: float = Field(default=0.0, ge=0, description="keep the body open this long after `[DONE]`")
    reply: str | None = None
    tool_arguments: dict[str, Any] | None = None
    logprob: float = Field(default=-0.05, le=0, description="logprob of each content token when `logprobs` is asked")


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: SimBehaviour = SimBehaviour()
    models: dict[str, SimBehaviour] = {}
    seed: int = 0


def load_sim_config(path: Path | None, overrides: dict[str, Any], seed: int | None = None) -> SimConfig:
    try:
        raw = yaml.safe_load(path.read_text()) if path is not None else None
        config = SimConfig.model_validate(raw or {})
        default = SimBehaviour.model_validate({**config.default.model_dump(exclude_unset=True), **overrides})
        return config.model_copy(update={"default": default, "seed": config.seed if seed is None else seed})
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"{path or 'sim'}: {field}: {error['msg']}") from exc
