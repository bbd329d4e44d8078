"""``python -m bertlab.reproduce list | <name> [--out PATH] [--dry-run] [options] [-- overrides ...]``

Runs one post's trainings and writes its table. Anything after ``--`` is passed to every
training command as Hydra overrides (e.g. ``-- threads=1``). ``--dry-run`` prints the commands
and runs nothing. ``python -m bertlab.reproduce <name> --help`` states the module's options and
where its table goes.
"""

from __future__ import annotations

import argparse
import sys

from bertlab.reproduce import get, names
from bertlab.reproduce.base import run
from bertlab.utils.checkout import warn_if_other_checkout


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bertlab.reproduce",
        description="Reproduce one post: run its trainings and write its table.",
        epilog="Anything after -- is passed to every training as Hydra overrides, e.g. -- threads=1.",
    )
    sub = ap.add_subparsers(dest="name", metavar="<name>", required=True)
    sub.add_parser("list", help="list the reproductions, one a line, with their descriptions")
    for name in names():
        rep = get(name)
        sp = sub.add_parser(
            name,
            help=rep.description,
            description=f"{rep.description} Table: {rep.table}.",
            epilog="Anything after -- is passed to every training as Hydra overrides.",
        )
        sp.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
        rep.add_arguments(sp)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warn_if_other_checkout()
    overrides: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, overrides = argv[:i], argv[i + 1 :]
    ap = build_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return int(stop.code or 0)
    if args.name == "list":
        if overrides:
            print("bertlab: error: list takes no overrides", file=sys.stderr)
            return 2
        width = max(len(n) for n in names())
        for name in names():
            print(f"{name:<{width}}  {get(name).description}")
        return 0
    return run(get(args.name), args, overrides)


if __name__ == "__main__":
    sys.exit(main())
