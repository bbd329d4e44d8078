"""What every reproduction is made of, and the one runner they share.

A post's module (``bertlab/reproduce/<name>.py``) defines ``REPRODUCTION = Reproduction(...)``:

* ``description``: one line (``python -m bertlab.reproduce --help`` lists it);
* ``table``: where the table goes by default (stated in ``--help``);
* ``add_arguments(parser)``: the module's own options (``--out`` and ``--dry-run`` are common);
* ``plan(args, overrides) -> [Command]``: the exact commands, in order (``overrides`` are the
  Hydra overrides given after ``--``);
* ``report(args) -> int``: reads the finished runs and writes the table (exit status);
* ``where(args)``: the table file those arguments write.

:func:`run` prints every command; with ``--dry-run`` nothing else happens, otherwise it runs
them in order (a command whose ``only_if`` does not hold is skipped and says why; a failed
command stops the chain unless it is ``keep_going``, e.g. a sweep whose finished jobs are still
tabulated) and then writes the table. Exit status: the report's, else 1 when a ``keep_going``
command failed, else 0; a failed chain command's own status.

:func:`seed_sweep` builds the Reproduction of an arms x seeds comparison
(:mod:`bertlab.reporting.seed_sweep` tabulates it).

A reproduction only plans: which runs, which seeds, which table; the tables are rendered by
``bertlab.reporting`` (each through :func:`bertlab.reporting.run_folder.read_run`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertlab.reporting.seed_sweep import SeedSweepTable
from bertlab.utils.errors import BertlabError, DataError
from bertlab.utils.hydra_utils import repo_root
from bertlab.utils.processes import child_env

ROOT = Path(repo_root())
TRAIN = ("-m", "bertlab.train")


def stamp() -> str:
    """The time stamp of a new output folder (one per invocation)."""
    return time.strftime("%Y-%m-%d_%H-%M-%S")


@dataclass(frozen=True)
class Deferred:
    """A command argument known only when the command runs (e.g. the best checkpoint of an
    earlier run): ``text`` in the dry-run listing, ``resolve()`` at run time (a
    :class:`BertlabError` stops the chain with one error line)."""

    text: str
    resolve: Callable[[], str]


@dataclass(frozen=True)
class Condition:
    """Run a command only if ``holds()`` (checked when its turn comes); ``text`` says when."""

    text: str
    holds: Callable[[], bool]


def path_exists(path: str | os.PathLike, kind: str = "dir") -> Condition:
    """``[ -d path ]`` (``kind="file"``: ``[ -f path ]``), a relative path from the repository root."""
    p, full = Path(path), ROOT / path
    if kind == "dir":
        return Condition(f"[ -d {p} ]", full.is_dir)
    return Condition(f"[ -f {p} ]", full.is_file)


def not_(cond: Condition) -> Condition:
    return Condition(f"! {cond.text}", lambda: not cond.holds())


@dataclass(frozen=True)
class Command:
    argv: Sequence[str | Deferred]  #: the program's arguments; "python" is this interpreter
    only_if: Condition | None = None
    keep_going: bool = False  #: a failure does not stop the chain (the report tells what finished)

    def shown(self) -> str:
        text = shlex.join(str(a.text if isinstance(a, Deferred) else a) for a in self.argv)
        return f"if {self.only_if.text}; then {text}; fi" if self.only_if else text

    def resolved(self) -> list[str]:
        argv = [a.resolve() if isinstance(a, Deferred) else str(a) for a in self.argv]
        return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]


def train(*overrides: str | Deferred, keep_going: bool = False, only_if: Condition | None = None) -> Command:
    """``python -m bertlab.train <overrides>``."""
    return Command(["python", *TRAIN, *overrides], only_if=only_if, keep_going=keep_going)


@dataclass(frozen=True)
class Reproduction:
    name: str
    description: str
    table: str
    plan: Callable[[argparse.Namespace, list[str]], list[Command]]
    report: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda ap: None
    #: the table file these arguments write
    where: Callable[[argparse.Namespace], Any] = lambda args: args.out
    #: options that only tabulate finished runs (e.g. ``report_only``): when set, nothing runs
    report_only: Sequence[str] = ()


def add_run_dir_arguments(ap: argparse.ArgumentParser, default_dir: str, table: str = "results.md") -> None:
    """``--dir`` (the folder of the runs), ``--out`` (the table, default ``<dir>/results.md``) and
    ``--report-only`` of the reproductions made of single runs in one folder."""
    ap.add_argument(
        "--dir", default=default_dir, help=f"folder of the runs, from the repository root (default {default_dir})"
    )
    ap.add_argument("--out", default=None, help=f"the table (default: <dir>/{table})")
    ap.add_argument("--report-only", action="store_true", help="only tabulate the finished runs in --dir")


def run_dir(args: argparse.Namespace) -> Path:
    return ROOT / args.dir


def out_file(args: argparse.Namespace, table: str = "results.md") -> Path:
    return ROOT / args.out if args.out else run_dir(args) / table


def best_checkpoint(folder: str | os.PathLike) -> Deferred:
    """The first ``checkpoints/best-*.ckpt`` of a run folder, looked up when the command runs."""
    folder = Path(folder)

    def resolve() -> str:
        found = sorted((ROOT / folder / "checkpoints").glob("best-*.ckpt"))
        if not found:
            raise DataError(str(folder / "checkpoints"), None, "no best checkpoint (best-*.ckpt): did the run finish?")
        return str(found[0])

    return Deferred(f"{folder}/checkpoints/best-*.ckpt", resolve)


#: keys of conf/eval.yaml that a training override must not set in an evaluation: the
#: checkpoint holds the run's data config (``+data.key=`` merges onto it) and names the model
_NOT_FOR_EVALUATE = frozenset({"data", "ckpt_path", "task_name"})


def evaluate_overrides(
    overrides: Sequence[str], config: str | os.PathLike | None = None
) -> tuple[list[str], list[str]]:
    """The training overrides that ``bertlab.evaluate`` also takes (their top-level key is a key or
    group of ``conf/eval.yaml``: ``trainer.*``, ``logger``, ``paths.*``, ``hydra.*`` ...), and
    the others (``threads``, ``encoder.*``, ``data.*``: a checkpoint's own)."""
    import yaml

    cfg = yaml.safe_load(Path(config or ROOT / "conf" / "eval.yaml").read_text(encoding="utf-8")) or {}
    keys = {k for k in cfg if k != "defaults"}
    for entry in cfg.get("defaults") or []:
        if isinstance(entry, dict):
            keys |= {str(k).removeprefix("optional ").split("@")[0] for k in entry}
    keys -= _NOT_FOR_EVALUATE
    taken: list[str] = []
    left: list[str] = []
    for o in overrides:
        top = str(o).lstrip("+~").split("=", 1)[0].split(".")[0].split("/")[0]
        (taken if top in keys else left).append(str(o))
    return taken, left


def evaluate(*args: str | Deferred, overrides: Sequence[str] = ()) -> Command:
    """``python -m bertlab.evaluate <args> <the overrides it takes>`` (:func:`evaluate_overrides`;
    the others are named on stderr, once, when the plan is made)."""
    taken, left = evaluate_overrides(overrides)
    if left:
        print(
            f"note: bertlab.evaluate takes no {' '.join(left)} (not keys of conf/eval.yaml): not passed to it",
            file=sys.stderr,
            flush=True,
        )
    return Command(["python", "-m", "bertlab.evaluate", *args, *taken])


def run(rep: Reproduction, args: argparse.Namespace, overrides: list[str]) -> int:
    """Print (``args.dry_run``) or run the reproduction's commands, then write its table."""
    only_report = any(getattr(args, k, None) for k in rep.report_only)
    try:
        cmds = [] if only_report else rep.plan(args, overrides)
    except BertlabError as err:
        print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
        return 2
    args.wall_seconds = None
    if args.dry_run:
        for c in cmds:
            print(c.shown())
        print(f"# then the table -> {rep.where(args)}")
        return 0
    failed = 0
    t0 = time.time()
    for c in cmds:
        if c.only_if is not None and not c.only_if.holds():
            print(f"skipping ({c.only_if.text} is false): {c.shown()}", flush=True)
            continue
        try:
            argv = c.resolved()
        except BertlabError as err:
            print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
            return 2
        print("running:", shlex.join(argv), flush=True)
        rc = subprocess.run(argv, cwd=ROOT, env=child_env()).returncode
        if rc != 0:
            if not c.keep_going:
                print(f"bertlab: error: exit status {rc} of: {shlex.join(argv)}", file=sys.stderr, flush=True)
                return rc
            failed += 1
            print(f"bertlab: error: exit status {rc}; tabulating what finished", file=sys.stderr, flush=True)
    if cmds:
        args.wall_seconds = time.time() - t0
    try:
        rc = rep.report(args)
    except BertlabError as err:
        print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
        return 2
    return rc or (1 if failed else 0)


# ---------------------------------------------------------------------------------------- seed sweeps
def seed_sweep(
    *,
    name: str,
    description: str,
    experiment: str,
    log_name: str,
    table: SeedSweepTable,
    published: str,
    sweeps: Callable[[str], list[list[str]]] | None = None,
    seeds: str | None = None,
) -> Reproduction:
    """An arms x seeds comparison: ``python -m bertlab.train -m experiment=<experiment>`` (its
    own ``hydra.sweeper.params``), or one multirun per override list of ``sweeps(seeds)`` into
    ``<multirun>/<i>`` (arms that are not a cross product), all tabulated together by ``table``
    (mean ± std per arm, then every run; :class:`bertlab.reporting.seed_sweep.SeedSweepTable`).
    Options: ``--out FILE`` (default: the table goes into the sweep folder, ``<sweep
    folder>/<name of published>``; the table of the docs, ``published``, is written only when
    ``--out`` names it), ``--multirun DIR`` (tabulate a finished sweep folder instead of running
    one), ``--seeds 1,2,3`` when ``sweeps`` is given."""
    md = Path(published).name

    def add_arguments(ap: argparse.ArgumentParser) -> None:
        ap.add_argument(
            "--out",
            default=None,
            help=f"markdown file (default: <sweep folder>/{md}; the published table: --out {published})",
        )
        ap.add_argument(
            "--multirun",
            default=None,
            metavar="DIR",
            help="tabulate this finished multirun folder (or a folder of them) instead of running",
        )
        ap.add_argument(
            "--sweep-dir",
            default=str(Path("logs") / log_name / "multiruns" / f"{stamp()}_{os.getpid()}"),
            help=f"where the new sweep goes (default: logs/{log_name}/multiruns/<time>_<pid>)",
        )
        if sweeps is not None:
            ap.add_argument(
                "--seeds", default=seeds or "1,2,3", type=_seed_list, help=f"seeds of every arm (default {seeds})"
            )

    def plan(args: argparse.Namespace, overrides: list[str]) -> list[Command]:
        sweep_dir = ROOT / args.sweep_dir
        parts = (
            [(sweep_dir, [])] if sweeps is None else [(sweep_dir / str(i), s) for i, s in enumerate(sweeps(args.seeds))]
        )
        return [
            train("-m", f"experiment={experiment}", f"hydra.sweep.dir={d}", *o, *overrides, keep_going=True)
            for d, o in parts
        ]

    def sweep_folder(args: argparse.Namespace) -> Path:
        return Path(args.multirun) if args.multirun else ROOT / args.sweep_dir

    def where(args: argparse.Namespace) -> Path:
        return Path(args.out) if args.out else sweep_folder(args) / md

    return Reproduction(
        name=name,
        description=description,
        table=f"<sweep folder>/{md} (the published one: --out {published})",
        plan=plan,
        report=lambda args: table.write(sweep_folder(args), where(args), seconds=args.wall_seconds),
        add_arguments=add_arguments,
        where=where,
        report_only=("multirun",),
    )


def _seed_list(text: str) -> str:
    if not text or not all(x.strip().lstrip("-").isdigit() for x in text.split(",")):
        raise argparse.ArgumentTypeError("takes a comma-separated list of integers, e.g. 1,2,3")
    return text


__all__ = [
    "ROOT",
    "Command",
    "Condition",
    "Deferred",
    "Reproduction",
    "add_run_dir_arguments",
    "best_checkpoint",
    "evaluate",
    "evaluate_overrides",
    "out_file",
    "run_dir",
    "not_",
    "path_exists",
    "run",
    "seed_sweep",
    "stamp",
    "train",
]
