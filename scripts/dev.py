"""`make dev`: the whole product on one machine, on the embedded default.

    python scripts/dev.py --dir .demo [--host 127.0.0.1] [--port 3000] [--customers 300] [--seed 42]

Starts the ZOHO Billing emulator from the demo's state file (its accounts, credentials and clock) and `dagster dev`
with the demo's settings (.demo/.env) and DAGSTER_DEPLOYMENT=demo, so schedules and sensors run and the job
zoho_demo_month_job is in the Launchpad. Without a demo yet, `make demo` runs first. Ctrl-C (or SIGTERM) stops all
of it: dagster dev and its webserver, daemon and code server, then the emulator; anything still alive after a grace
period is killed, so no process is left behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import start_emulator  # noqa: E402  (scripts/ is not a package)

GRACE_S = 20
REPO = Path(__file__).resolve().parents[1]


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (read from /proc: no psutil)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def ensure_demo(workdir: Path, customers: int, seed: int) -> None:
    if (workdir / ".env").exists() and (workdir / "source.db").exists():
        return
    print(f"No demo in {workdir} yet: making one first (make demo)\n", flush=True)
    demo = Path(__file__).resolve().parent / "demo.py"
    args = [sys.executable, str(demo), "--dir", str(workdir), "--customers", str(customers), "--seed", str(seed)]
    subprocess.run(args, check=True)


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGINT to each process group (what Ctrl-C does to a terminal's), then SIGKILL to whatever outlives the grace
    period, including grandchildren that left their group."""
    tree = {p.pid: descendants(p.pid) for p in procs if p.poll() is None}
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for pid in [pid for pids in tree.values() for pid in pids] + list(tree):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=".demo", help="the demo's folder (default .demo)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000, help="the Dagster UI's port (default 3000)")
    p.add_argument("--customers", type=int, default=300, help="for a first demo only")
    p.add_argument("--seed", type=int, default=42, help="for a first demo only")
    args = p.parse_args(argv)

    workdir = Path(args.dir).resolve()
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or workdir.parent / ".dagster_home").resolve()
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    if not port_is_free(args.host, args.port):
        print(f"port {args.port} is taken (another dagster dev?): stop it or pass --port", file=sys.stderr)
        return 2
    ensure_demo(workdir, args.customers, args.seed)
    settings = read_env_file(workdir / ".env")

    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    # the demo's emulator again, on the same port when it is free (the URL in .env stays right), else a new one
    old = urlsplit(settings["ZOHO_ACCOUNTS_URL"])
    port = old.port if old.port and port_is_free("127.0.0.1", old.port) else None
    emulator, url = start_emulator(workdir / "zoho-state.json", workdir / "emulator.log", port=port)
    procs = [emulator]
    try:
        if url != settings["ZOHO_ACCOUNTS_URL"]:
            settings.update(ZOHO_ACCOUNTS_URL=url, ZOHO_API_BASE_URL=f"{url}/billing/v1")
            (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        env = {**os.environ, **settings, "DAGSTER_DEPLOYMENT": "demo"}
        cmd = [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            str(REPO / "workspace.yaml"),  # the code location as deployed: zoho_pipeline
            "-h",
            args.host,
            "-p",
            str(args.port),
        ]
        dagster = subprocess.Popen(cmd, env=env, cwd=workdir.parent, process_group=0)
        procs.append(dagster)
        print(
            f"\nZOHO Billing emulator on {url} (state and clock in {workdir / 'zoho-state.json'})\n"
            f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={dagster_home}; schedules and sensors on)\n"
            f"Play a month of business: the Launchpad's zoho_demo_month_job, or `make month`. Ctrl-C stops all.\n",
            flush=True,
        )
        while not stopping:
            for proc, name in ((emulator, "the emulator"), (dagster, "dagster dev")):
                if proc.poll() is not None:
                    print(f"{name} exited ({proc.returncode}); stopping the rest", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.5)
        print("\nStopping dagster dev and the emulator …", flush=True)
        return 0
    finally:
        stop(list(reversed(procs)))


if __name__ == "__main__":
    sys.exit(main())
