"""The demo's configs: the shipped one on the embedded local model (its `local` provider pointed wherever the model
server listens), and the shipped OpenAI one."""

from __future__ import annotations

import os
from pathlib import Path

from triage._config import TriageConfig, default_config_path, load_config
from triage.demo._process import LocalModelError

__all__ = ["LOCAL_PROVIDER", "local_config", "openai_config_path", "with_local_url"]


# The provider of the shipped demo config that names the embedded model; its base_url is rewritten to wherever the
# model server actually listens.
LOCAL_PROVIDER = "local"


def openai_config_path() -> Path:
    """The OpenAI config shipped inside the package (a copy of the repository's triage.example.yaml)."""
    return default_config_path().with_name("triage.openai.yaml")


def local_config(base_url: str, path: str | os.PathLike[str] | None = None) -> TriageConfig:
    """The demo config (default: the shipped one) with its `local` provider pointing at `base_url` (`.../v1`)."""
    return with_local_url(load_config(path), base_url)


def with_local_url(config: TriageConfig, base_url: str) -> TriageConfig:
    """`config` with its `local` provider pointing at `base_url`."""
    provider = config.providers.get(LOCAL_PROVIDER)
    if provider is None:
        raise LocalModelError(f"the config has no provider named {LOCAL_PROVIDER!r} for the local model")
    # Only a URL changes, so the validated config stays valid without a second validation.
    providers = {**config.providers, LOCAL_PROVIDER: provider.model_copy(update={"base_url": base_url})}
    return config.model_copy(update={"providers": providers})
