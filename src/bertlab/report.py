"""Report on a Hydra multirun: ``python -m bertlab.report <multirun dir> [--metric val/f1] [--out DIR]``.

Writes ``report.md`` (one row per job: the swept overrides, status, final / best / epoch-1
value of the metric, test metrics) and ``report.png`` (best and final metric per job) into
``--out`` (default: the multirun folder), and prints the markdown. See
:mod:`bertlab.reporting.multirun` for the definitions. Exit status 0; 2 with one error line
for a folder that is not a multirun folder or a metric no job logged.
"""

from __future__ import annotations

import argparse
import sys

from bertlab.utils.errors import BertlabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bertlab.report", description=__doc__.splitlines()[0])
    parser.add_argument("multirun_dir", help="a Hydra multirun folder (holds multirun.yaml and one folder per job)")
    parser.add_argument("--metric", default="val/f1", help="metric to summarise (default: val/f1)")
    parser.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "max", "min"),
        help="which value is best (auto: min if the name contains 'loss', else max)",
    )
    parser.add_argument("--out", default=None, help="output folder (default: the multirun folder)")
    args = parser.parse_args(argv)

    from bertlab.reporting.multirun import build_report, render_markdown, write_report

    try:
        report = build_report(args.multirun_dir, metric=args.metric, mode=args.mode)
        md, png = write_report(report, args.out)
    except BertlabError as err:
        print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
        return 2
    except OSError as err:  # e.g. an output folder that cannot be written
        print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
        return 2
    sys.stdout.write(render_markdown(report))
    print(f"wrote {md} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
