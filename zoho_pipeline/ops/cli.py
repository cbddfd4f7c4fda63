"""`zoho-pipeline`: one console script, one module per sub-command (each has `main(argv) -> exit code`).

The modules are imported only when their command runs, so `zoho-pipeline emulator` starts without Dagster.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "emulator": ("zoho_pipeline.emulator.__main__", "run the ZOHO Billing emulator (a real HTTP server)"),
    "db": ("zoho_pipeline.ops.db_cmd", "source database: upgrade, downgrade, current, create-demo"),
    "sync": ("zoho_pipeline.ops.sync_cmd", "run the sync job through Dagster and print a summary"),
    "status": ("zoho_pipeline.ops.status_cmd", "per-entity counts, failures, API budget, backlog ETA"),
    "logs": ("zoho_pipeline.ops.logs_cmd", "the attempt log, newest first"),
    "retry": ("zoho_pipeline.ops.retry_cmd", "requeue failed or dead-lettered rows and sync them now"),
    "health": ("zoho_pipeline.ops.health_cmd", "health check for cron or a probe (exit 0 healthy, 1 not)"),
    "alert": ("zoho_pipeline.ops.alert_cmd", "send (or --dry-run print) alerts for failed syncs"),
    "reconcile": ("zoho_pipeline.ops.reconcile_cmd", "differences between the source and ZOHO, row by row"),
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
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


def _load_dotenv() -> None:
    try:
        from dotenv import load_dotenv
    except ImportError:  # optional: the environment alone is enough
        return
    load_dotenv(override=False)


if __name__ == "__main__":
    sys.exit(main())
