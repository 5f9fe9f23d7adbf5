"""Configuration: one pydantic model, loaded from a YAML file (`triage.yaml`) and overridable by environment
variables (`TRIAGE_` prefix, `__` between nested names, e.g. `TRIAGE_CLASSIFIER__THRESHOLD=0.7`).

Invalid configuration fails at start-up with a `ConfigError` naming the field (`routes.simple.models.0: ...`).
Upstream keys are never stored here: a provider names the env var that holds its key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from triage._exceptions import ConfigError
from triage._resources import data_file

__all__ = [
    "AuthConfig",
    "ClassifierConfig",
    "KeyConfig",
    "LLMClassifierConfig",
    "ModelConfig",
    "PoolConfig",
    "ProviderConfig",
    "RedisConfig",
    "RouteConfig",
    "ServerConfig",
    "SpeculationConfig",
    "StoreConfig",
    "TimeoutConfig",
    "TriageConfig",
    "default_config_path",
    "load_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutConfig(_Strict):
    """Seconds. `first_token` bounds the wait from sending the request to the first chunk; `idle` the gap between
    chunks; `total` the whole answer. `connect` is separate so a dead host fails fast."""

    connect: float = Field(5.0, gt=0)
    first_token: float = Field(30.0, gt=0)
    idle: float = Field(30.0, gt=0)
    total: float = Field(600.0, gt=0)


class ProviderConfig(_Strict):
    base_url: str
    # Name of the env var holding the key, never the key itself. None: the provider needs no key (local servers).
    api_key_env: str | None = None
    # How the provider takes `response_format: json_schema`: natively, or (llama-cpp-python's server) as
    # `{"type": "json_object", "schema": ...}`, which Triage translates to.
    json_schema: Literal["native", "json_object"] = "native"
    timeout: TimeoutConfig = TimeoutConfig()
    max_connections: int = Field(256, ge=1)
    # Under the provider's own idle timeout (5 s in uvicorn, hence vLLM; llama.cpp's server), as Node's
    # agentkeepalive does: otherwise a connection the provider closes while Triage's loop is busy is handed out and
    # the request on it fails (issue 8). aiohttp's own default is 15 s.
    keepalive: float = Field(4.0, gt=0, description="seconds an idle pooled connection is kept for reuse")

    def api_key(self) -> SecretStr | None:
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        return SecretStr(value) if value else None


class ModelConfig(_Strict):
    provider: str
    upstream_id: str
    input_per_mtok: float = Field(0.0, ge=0, description="USD per 1M prompt tokens")
    output_per_mtok: float = Field(0.0, ge=0, description="USD per 1M completion tokens")
    capabilities: frozenset[Literal["tools", "json", "vision"]] = frozenset({"tools", "json"})


class RouteConfig(_Strict):
    models: list[str] = Field(min_length=1, description="ordered chain: primary first, then fallbacks")
    description: str = ""


class LLMClassifierConfig(_Strict):
    model: str
    mode: Literal["tools", "json_schema"] = "tools"
    timeout: float = Field(1.0, gt=0)
    threshold: float = Field(0.6, ge=0, le=1)
    examples: list[tuple[str, str]] = Field(default_factory=list, description="(text, category) few-shot pairs")
    # Expected latency, used by speculation's `auto` mode to judge whether warming the cheap model pays.
    expected_ms: float = Field(180.0, ge=0)


class ClassifierConfig(_Strict):
    # rules -> local head -> (with `llm` set, for the unsure) LLM classifier.
    kind: Literal["rules", "local", "cascade"] = "cascade"
    threshold: float = Field(0.5, ge=0, le=1, description="below this confidence, route to the strongest model")
    # Per-category bars over `threshold`. A decision for the cheap route is the costly one to get wrong (a hard
    # request answered by the weak model), so it can be held to a higher bar than one that sends a request up:
    # `triage calibrate` sets the cheap route's bar from the under-routing bound.
    thresholds: dict[str, float] = Field(default_factory=dict, description="category -> its own confidence bar")
    context_turns: int = Field(2, ge=0, le=16)
    head: str | None = Field(None, description="path of a trained head; None: the shipped default")
    llm: LLMClassifierConfig | None = None
    # Reviewers' corrections that act at once on near-duplicates (cosine >= memory_similarity), before a retrain.
    memory_similarity: float = Field(0.92, gt=0, le=1)
    memory_size: int = Field(10_000, ge=0, description="corrections kept in memory; 0: off")

    @field_validator("thresholds")
    @classmethod
    def _bars_are_probabilities(cls, thresholds: dict[str, float]) -> dict[str, float]:
        for category, bar in thresholds.items():
            if not 0.0 <= bar <= 1.0:
                raise ValueError(f"thresholds.{category}: {bar} is not between 0 and 1")
        return thresholds

    def threshold_for(self, category: str) -> float:
        """The confidence a local decision for `category` needs; below it the request goes to the strongest model."""
        return self.thresholds.get(category, self.threshold)


class SpeculationConfig(_Strict):
    mode: Literal["auto", "always", "never"] = "auto"
    model: str | None = Field(None, description="model to warm up; None: the first model of the `simple` route")
    max_prompt_tokens: int = Field(4000, ge=0, description="`auto` skips prompts longer than this")


class PoolConfig(_Strict):
    """The PostgreSQL connection pool. Seconds: `connect` bounds opening a connection, `command` one statement,
    `acquire` the wait for a free connection."""

    min_size: int = Field(1, ge=0)
    max_size: int = Field(8, ge=1)
    connect: float = Field(5.0, gt=0)
    command: float = Field(10.0, gt=0)
    acquire: float = Field(5.0, gt=0)


def _no_password_in_url(url: str | None, password_env: str) -> str | None:
    """A URL that holds a password would be one log line or error message away from leaking it: refused."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here, at start-up)
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if parts.password is not None:
        raise ValueError(f"must not hold a password: put it in an env var and name that var in {password_env}")
    return url


class StoreConfig(_Strict):
    """Where decisions, corrections (and with `url`, the classifier's head versions) live: a SQLite file at `path`
    (one host), or the PostgreSQL database at `url` (`postgresql://user@host:5432/db`, the password in the env var
    named by `password_env`), which every instance shares."""

    # A rejected URL may hold a password: validation errors never repeat the input.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    path: str = "triage.db"
    url: str | None = Field(None, description="postgresql://user@host:port/db; None: the SQLite file at `path`")
    password_env: str | None = Field(None, description="env var holding the database password")
    pool: PoolConfig = PoolConfig()
    text: Literal["full", "none"] = "full"
    retention_days: float = Field(30.0, gt=0)
    queue_size: int = Field(10_000, ge=1)
    batch_size: int = Field(512, ge=1, description="decision records per write")
    flush_timeout: float = Field(10.0, gt=0, description="on shutdown, seconds to write what is still queued")
    heads_cache: str | None = Field(
        None, description="with `url`: local directory for head versions read from the database; None: a temp dir"
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        return _no_password_in_url(url, "store.password_env")

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.url is None else "postgresql"

    def password(self) -> SecretStr | None:
        value = os.environ.get(self.password_env) if self.password_env else None
        return SecretStr(value) if value else None


class RedisConfig(_Strict):
    """Redis or Valkey, for what instances must share at request time: per-key rate limits, concurrency slots
    and model cooldowns. Without `url` each process keeps its own."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str | None = Field(None, description="redis://host:6379/0 (rediss:// for TLS); None: no Redis")
    password_env: str | None = Field(None, description="env var holding the Redis password")
    prefix: str = Field("triage", min_length=1, description="namespace of every key Triage writes")
    # When Redis cannot be reached: `open` serves without the shared limits (each process applies its own),
    # `closed` refuses requests that have a limit (429/503 with retry-after). Never a 5xx.
    on_error: Literal["open", "closed"] = "open"
    timeout: float = Field(0.25, gt=0, description="seconds for one Redis command, connecting included")
    retry_interval: float = Field(1.0, gt=0, description="after a failure, seconds before Redis is tried again")
    log_interval: float = Field(60.0, gt=0, description="an outage is logged once per this many seconds")
    slot_ttl: float = Field(60.0, gt=0, description="seconds a concurrency slot of a dead instance is kept")

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in ("redis", "rediss", "valkey", "valkeys"):
            raise ValueError("must be a redis:// or rediss:// URL")
        return _no_password_in_url(url, "redis.password_env")

    def password(self) -> SecretStr | None:
        value = os.environ.get(self.password_env) if self.password_env else None
        return SecretStr(value) if value else None


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    send_timeout: float = Field(30.0, gt=0, description="drop a client that stops reading for this long")
    ping_interval: float = Field(15.0, gt=0)
    cooldown_seconds: float = Field(30.0, ge=0, description="how long a failing model is skipped")
    cooldown_after_failures: int = Field(3, ge=1)
    max_retry_after: float = Field(10.0, ge=0, description="longest upstream retry-after honoured before falling on")
    max_streams: int = Field(1024, ge=1, description="concurrent model requests in total; past it: 503")
    shutdown_grace: float = Field(10.0, ge=0, description="on shutdown, how long in-flight streams may finish")
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object a line, with request ids")


class KeyConfig(_Strict):
    """A client key: its id (recorded with each decision), its SHA-256 digest or the env var holding the key,
    its role, and its limits."""

    id: str = Field(min_length=1, max_length=64)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    key_env: str | None = None
    role: Literal["client", "reviewer", "admin"] = "client"
    rate_per_minute: float | None = Field(None, gt=0, description="token-bucket refill; None: unlimited")
    max_streams: int | None = Field(None, ge=1, description="concurrent requests for this key")

    @model_validator(mode="after")
    def _one_source(self) -> KeyConfig:
        if (self.sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of sha256 or key_env")
        return self


class AuthConfig(_Strict):
    keys: list[KeyConfig] = Field(default_factory=list, description="none: open access, loopback only")


class TriageConfig(BaseSettings):
    """The whole configuration. Build it with `load_config(path)`, or with keyword arguments in tests."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", env_nested_delimiter="__", extra="forbid", frozen=True, validate_default=True
    )

    router_name: str = "auto"
    providers: dict[str, ProviderConfig]
    models: dict[str, ModelConfig] = Field(min_length=1)
    routes: dict[str, RouteConfig] = Field(min_length=1)
    strongest: str | None = Field(None, description="model for low-confidence requests; None: the priciest")
    default_category: str = "simple"
    classifier: ClassifierConfig = ClassifierConfig()
    speculation: SpeculationConfig = SpeculationConfig()
    store: StoreConfig = StoreConfig()
    redis: RedisConfig = RedisConfig()
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Env vars override the file (which arrives as init kwargs from load_config).
        return env_settings, init_settings

    @field_validator("routes")
    @classmethod
    def _routes_have_names(cls, routes: dict[str, RouteConfig]) -> dict[str, RouteConfig]:
        for name in routes:
            if not name.isidentifier():
                raise ValueError(f"route name {name!r} must be an identifier")
        return routes

    @model_validator(mode="after")
    def _references_resolve(self) -> TriageConfig:
        for name, model in self.models.items():
            if model.provider not in self.providers:
                raise ValueError(f"models.{name}.provider: unknown provider {model.provider!r}")
        for name, route in self.routes.items():
            for i, model_name in enumerate(route.models):
                if model_name not in self.models:
                    raise ValueError(f"routes.{name}.models.{i}: unknown model {model_name!r}")
        if self.strongest is not None and self.strongest not in self.models:
            raise ValueError(f"strongest: unknown model {self.strongest!r}")
        if self.default_category not in self.routes:
            raise ValueError(f"default_category: no route named {self.default_category!r}")
        if self.router_name in self.models:
            raise ValueError(f"router_name: {self.router_name!r} is also a model name")
        for category in self.classifier.thresholds:
            if category not in self.routes:
                raise ValueError(f"classifier.thresholds.{category}: no route named {category!r}")
        if self.classifier.llm is not None and self.classifier.llm.model not in self.models:
            raise ValueError(f"classifier.llm.model: unknown model {self.classifier.llm.model!r}")
        if self.speculation.model is not None and self.speculation.model not in self.models:
            raise ValueError(f"speculation.model: unknown model {self.speculation.model!r}")
        return self

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.routes)

    @property
    def strongest_model(self) -> str:
        """The model low-confidence requests go to, and the baseline savings are measured against."""
        if self.strongest is not None:
            return self.strongest
        return max(self.models, key=lambda n: (self.models[n].output_per_mtok + self.models[n].input_per_mtok, n))

    @property
    def speculative_model(self) -> str:
        if self.speculation.model is not None:
            return self.speculation.model
        return self.routes.get(self.default_category, next(iter(self.routes.values()))).models[0]


def default_config_path() -> Path:
    """The config the demo runs on, shipped inside the package."""
    return data_file("triage.default.yaml")


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> TriageConfig:
    """Load and validate the YAML file at `path` (default: the shipped demo config); env vars override it."""
    file = Path(path) if path is not None else default_config_path()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(file)!r} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(file)!r} must hold a mapping at top level")
    raw.update(overrides)
    try:
        return TriageConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid config {str(file)!r}:\n{_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"])
        lines.append(f"  {where or '(top level)'}: {err['msg']}")
    return "\n".join(lines)
