"""python -m stack run|up|down|status|provision|serve|dist|install-runtime"""

from __future__ import annotations

import argparse
import sys

from . import assets, build, core, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run the stack in the foreground until Ctrl-C")
    p_run.add_argument("--verbose", action="store_true", help="log every page request")
    p_up = sub.add_parser("up", help="start the stack in the background (no-op when up)")
    for p in (p_run, p_up):
        p.add_argument(
            "--cluster",
            action="store_true",
            help="PostgreSQL, Redis, two Directus and HAProxy instead of one Directus on SQLite",
        )
    sub.add_parser("down", help="stop the background stack, single or cluster (by var/*.pid)")
    sub.add_parser("status", help="show what runs (exit 0 when both servers answer)")
    sub.add_parser("provision", help="(re)provision the running Directus; idempotent")
    sub.add_parser("serve", help="only the page server (used by `up`)", add_help=False)
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
        from . import cluster

        if args.cmd in ("run", "up") and args.cluster:
            if args.cmd == "run":
                return cluster.run()
            cluster.print_info(cluster.up())
            return 0
        if args.cmd in ("run", "up") and cluster.running():
            print("the cluster is running (`make down` stops it)", file=sys.stderr)
            return 1
        if args.cmd == "run":
            return core.run(verbose=args.verbose)
        if args.cmd == "up":
            info, started = core.up()
            if not started:
                print("the stack is already up")
            print(f"  open      {info['app_url']}")
            print(f"  Directus  {info['directus_url']}")
            print(f"  token     {info['token']}")
            return 0
        if args.cmd == "down":
            stopped = core.down(quiet=False)
            if not (cluster.down(quiet=False) or stopped):
                print("the stack is not running")
            return 0
        if args.cmd == "status":
            if cluster.running():
                return cluster.print_status()
            return core.print_status()
        if args.cmd == "provision":
            return core.provision_running()
        if args.cmd == "install-runtime":
            return assets.main()
    except RuntimeError as err:  # StackError, DirectusError, provisioning errors
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
