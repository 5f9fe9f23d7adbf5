"""The `triage` console script. Each subcommand lives in its own module with `configure(parser)` and
`run(args) -> int`; modules are imported only when their command runs, so `triage --help` stays instant."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from triage._exceptions import ConfigError, StoreUnavailable

__all__ = ["main"]

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("triage.cli._serve", "run the gateway"),
    "demo": ("triage.cli._demo", "run the gateway and the demo UI on the embedded local model"),
    "sim": ("triage.cli._sim", "run the simulated OpenAI-compatible provider"),
    "train": ("triage.cli._train", "fit the local classifier's head on a JSONL file"),
    "eval": ("triage.cli._evaluate", "evaluate a classifier on a labeled JSONL file"),
    "calibrate": ("triage.cli._evaluate", "pick the confidence threshold for a bound on under-routing"),
    "retrain": ("triage.cli._retrain", "refit the local classifier's head on the reviewers' corrections"),
    "rollback": ("triage.cli._retrain", "put the previous classifier head back in service"),
    "anchor": ("triage.cli._retrain", "show or pin the head version that retraining judges candidates against"),
    "export": ("triage.cli._export", "write the store's decisions and corrections as JSONL"),
    "db": ("triage.cli._db", "the store's schema: `triage db upgrade` applies its migrations"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triage", description="LLM-routing gateway.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            configure = getattr(module, f"configure_{name}", None) or module.configure
            configure(sub)
            sub.set_defaults(handler=getattr(module, f"run_{name}", None) or module.run)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
