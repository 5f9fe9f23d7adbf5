"""`triage sim`: the simulated OpenAI-compatible provider under uvicorn, to load-test a routing config for free.

    triage sim --port 9000 --ttft-ms 20 --tokens-per-s 200 [--config sim.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from triage.sim import create_sim_app, load_sim_config

__all__ = ["configure_sim", "run_sim"]


def configure_sim(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--config", type=Path, help="YAML file holding a SimConfig (default, models, seed)")
    # Flags left unset keep the config file's default behaviour.
    parser.add_argument("--ttft-ms", type=float, help="time to first token (default 20)")
    parser.add_argument("--tokens-per-s", type=float, help="stream speed, 0 = as fast as possible (default 200)")
    parser.add_argument("--completion-tokens", type=int, help="length of generated answers (default 40)")
    parser.add_argument("--seed", type=int, help="changes every generated answer (default 0)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run_sim(args: argparse.Namespace) -> int:
    import uvicorn

    flags = {"ttft_ms": args.ttft_ms, "tokens_per_s": args.tokens_per_s, "completion_tokens": args.completion_tokens}
    config = load_sim_config(args.config, {k: v for k, v in flags.items() if v is not None}, args.seed)
    app = create_sim_app(config)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, http="httptools")
    return 0
