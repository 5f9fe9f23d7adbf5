"""The `triage` command: one module per subcommand (argument parsing and output), calling into the packages that do
the work. `_main` dispatches, importing a subcommand's module only when it runs, so `triage --help` stays instant."""

from triage.cli._main import main

__all__ = ["main"]
