"""Report on a Hydra multirun: ``python -m bertlab.report <multirun dir> [--metric val/f1] [--out DIR]``.

Reads a multirun folder (``-m``, ``multirun.yaml``) or an Optuna sweep folder
(``hparams_search=...``: the jobs' ``.hydra/overrides.yaml`` and ``optimization_results.yaml``).
Writes ``report.md`` (one row per job: the swept overrides, status, final / best / epoch-1
value of the metric, test metrics; then the groups of jobs alike but for their seed: n, seeds,
mean ± std), ``report.png`` (best and final metric per job) and ``report_curve.png`` (every
group's learning curve) into ``--out`` (default: the multirun folder), and prints the markdown.
See :mod:`bertlab.reporting.multirun` for the definitions. Exit status 0; 2 with one error line
for a folder that is not a multirun folder or a metric no job logged.
"""

from __future__ import annotations

import argparse
import sys

from bertlab.utils.errors import BertlabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertlab.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "multirun_dir", help="a Hydra multirun or Optuna sweep folder (one folder per job: <n>/.hydra/)"
    )
    parser.add_argument("--metric", default="val/f1", help="metric to summarise (default: val/f1)")
    parser.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "max", "min"),
        help="which value is best (auto: min if the name contains 'loss', else max)",
    )
    parser.add_argument("--out", default=None, help="output folder (default: the multirun folder)")
    args = parser.parse_args(argv)

    from bertlab.reporting.multirun import build_report, write_report
    from bertlab.utils.checkout import warn_if_other_checkout

    warn_if_other_checkout()
    try:
        report = build_report(args.multirun_dir, metric=args.metric, mode=args.mode)
        md, *pngs = write_report(report, args.out)
    except BertlabError as err:
        print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
        return 2
    except OSError as err:  # e.g. an output folder that cannot be written
        print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
        return 2
    sys.stdout.write(md.read_text(encoding="utf-8"))
    print(f"wrote {md} and {' and '.join(map(str, pngs))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
