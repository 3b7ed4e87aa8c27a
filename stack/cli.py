"""The command line of the stack: python -m stack run|up|down|status|provision|serve|dist|..."""

from __future__ import annotations

import argparse
import json
import sys

from . import assets, build, core, serve, supervisor
from .parts import StackError


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def print_status() -> int:
    """Each part: up or down, pid, uptime, restarts, health. 0 when every part is up."""
    st = core.status()
    sup = st["supervisor"]
    if sup["pid"] is not None:
        print(f"{st['mode']} stack, supervisor pid {sup['pid']} (up {_duration(sup['uptime'])})")
    else:
        print(f"{st['mode']} stack, no supervisor: a crashed part stays down (`make up`)")
    print(f"{'part':12} {'state':6} {'pid':>8} {'uptime':>8} {'restarts':>8}  health")
    for row in st["parts"]:
        state = "up" if row["up"] else ("sick" if row["pid"] else "down")
        pid = str(row["pid"]) if row["pid"] else "-"
        print(
            f"{row['label']:12} {state:6} {pid:>8} {_duration(row['uptime']):>8} "
            f"{row['restarts']:>8}  {row['health'] or '-'}  {row['url']}"
        )
    for row in st["parts"]:
        if row["given_up"]:
            print(f"GIVEN UP: {row['given_up']}")
        elif not row["up"] and row["last_exit"]:
            print(f"{row['label']}: {row['last_exit']}")
    if sup["pid"] is not None:
        print(f"restarts are logged in {sup['log']}")
    return 0 if st["up"] else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run the stack in the foreground until Ctrl-C")
    p_run.add_argument("--verbose", action="store_true", help="log every page request")
    p_up = sub.add_parser("up", help="start what is down, in the background, under a supervisor")
    for p in (p_run, p_up):
        p.add_argument(
            "--cluster",
            action="store_true",
            help="PostgreSQL, Redis, two Directus and HAProxy instead of one Directus on SQLite",
        )
    sub.add_parser("down", help="stop the supervisor, then every part (by var/*.pid)")
    p_status = sub.add_parser("status", help="each part's state, pid, uptime, restarts, health")
    p_status.add_argument("--json", action="store_true", help="as JSON (same exit status)")
    sub.add_parser("provision", help="(re)provision the running Directus; idempotent")
    p_sup = sub.add_parser("supervise", help="the supervisor (started by `up`)")
    p_sup.add_argument("--mode", choices=core.MODES, required=True)
    p_sup.add_argument("--directus-port", type=int, required=True)
    p_sup.add_argument("--app-port", type=int, required=True)
    sub.add_parser("serve", help="only the page server (a part of the stack)", add_help=False)
    sub.add_parser("dist", help="write dist/, the page for any static web server", add_help=False)
    sub.add_parser(
        "install-runtime", help="copy PyScript/MicroPython/Pyodide/SDK into static/runtime/"
    )
    args, rest = parser.parse_known_args(argv)

    if args.cmd == "serve":
        return serve.main(rest)
    if args.cmd == "dist":
        return build.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.cmd == "run":
            # None: the mode that runs, else single; --cluster asks for the cluster.
            return core.run(cluster=args.cluster or None, verbose=args.verbose)
        if args.cmd == "up":
            info, _ = core.up(cluster=args.cluster or None)
            supervisor.print_banner(info)
            return 0
        if args.cmd == "down":
            if not core.down(quiet=False):
                print("the stack is not running")
            return 0
        if args.cmd == "status":
            if args.json:
                st = core.status()
                print(json.dumps(st, indent=2))
                return 0 if st["up"] else 3
            return print_status()
        if args.cmd == "supervise":
            stack = core.LocalStack(args.mode, args.directus_port, args.app_port)
            return supervisor.Supervisor(stack, foreground=False).run()
        if args.cmd == "provision":
            return core.provision_running()
        if args.cmd == "install-runtime":
            return assets.main()
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:  # DirectusProcessError, provisioning errors
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2
