"""`zoho-pipeline`: one console script, one module per sub-command (each has `main(argv) -> exit code`).

The modules are imported only when their command runs, so `zoho-pipeline emulator` starts without Dagster.
"""

from __future__ import annotations

import gc
import importlib
import sys

from zoho_pipeline.env import ConfigError, unknown_variables

COMMANDS = {
    "emulator": ("zoho_pipeline.emulator.__main__", "run the ZOHO Billing emulator (a real HTTP server)"),
    "db": ("zoho_pipeline.cli.db", "source database: upgrade, downgrade, current, create-demo, prune"),
    "sync": ("zoho_pipeline.cli.sync", "run the sync job through Dagster and print a summary"),
    "status": ("zoho_pipeline.cli.status", "per-entity counts, failures, API budget, backlog ETA"),
    "logs": ("zoho_pipeline.cli.logs", "the attempt log, newest first"),
    "calls": ("zoho_pipeline.cli.calls", "the API call inspector: the last calls to ZOHO, request and response"),
    "retry": ("zoho_pipeline.cli.retry", "requeue failed or dead-lettered rows and sync them now"),
    "health": ("zoho_pipeline.cli.health", "health check for cron or a probe (exit 0 healthy, 1 not)"),
    "alert": ("zoho_pipeline.cli.alert", "send (or --dry-run print) alerts for failed syncs"),
    "reconcile": ("zoho_pipeline.cli.reconcile", "differences between the source and ZOHO, row by row"),
    "demo": ("zoho_pipeline.cli.demo", "time in the demo: play a month of business, move ZOHO's clock; figures"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: zoho-pipeline COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "zoho-pipeline COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"zoho-pipeline: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    _load_dotenv()
    if name != "emulator":  # the emulator reads flags, not the pipeline's variables
        for warning in unknown_variables():
            print(f"zoho-pipeline: warning: {warning}", file=sys.stderr)
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except ConfigError as exc:  # a malformed variable: name it, never a traceback nor a silent default
        print(f"zoho-pipeline {name}: configuration error: {exc}", file=sys.stderr)
        return 2


# Young collections every 10,000 new objects, not Python's 700: importing Dagster and the definitions makes ~160k
# objects, and the default thresholds walked them all in several full collections per `zoho-pipeline sync`.
GC_THRESHOLDS = (10_000, 10, 10)


def console() -> None:
    """The console script (`zoho-pipeline`): main() with a process's garbage collection tuned (issue 12's fixed
    cost: together ~1 s of CPU of a no-op sync, +1 MB peak RSS on a real one). gc.freeze() before the interpreter
    exits: its final collections would otherwise walk every object left, for memory the OS takes back anyway.
    Tests call main() and keep Python's defaults."""
    gc.set_threshold(*GC_THRESHOLDS)
    code = main()
    gc.freeze()
    sys.exit(code)


def _load_dotenv() -> None:
    try:
        from dotenv import load_dotenv
    except ImportError:  # optional: the environment alone is enough
        return
    load_dotenv(override=False)


if __name__ == "__main__":
    console()
