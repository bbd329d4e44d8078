"""The reading-comprehension bounds of a data configuration, without training: the trivial
baseline (its answer length chosen on the training split only, ``BASELINE_RULE``) and the
layout's ceiling (oracle answers of at most M - 1 tokens inside one window), scored with both
official definitions (Sogou Acc / F1 / Final, CMRC 2018 EM / F1) on the validation and test
questions. These are the ``baseline_*`` / ``oracle_*`` values every MRC run logs with its test
metrics; this script gives them for re-scoring tables whose runs are gone.

    python scripts/mrc_bounds.py [--out FILE] [key=value ...]   # default: experiment=mrc_mlm
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from bertlab.data.mrc import BASELINE_RULE
from bertlab.nn.encoders import resolve_vocab_file
from bertlab.tasks.mlm_reading_comprehension import answer_bounds

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("acc", "f1", "final", "cmrc_em", "cmrc_f1")


def bounds_table(overrides: list[str]) -> str:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=mrc_mlm", *overrides])
    cfg.paths.data_dir = str(ROOT / "data")
    dm = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    questions = dm.read_questions()
    m = int(cfg.data.max_answer_len)
    lines = [
        f"Bounds of `{' '.join(['experiment=mrc_mlm', *overrides])}` (M = {m} answer slots). Baseline rule: "
        f"{BASELINE_RULE}.",
        "",
        "| split | questions | row | Acc | F1 | Final | CMRC EM | CMRC F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in ("val", "test"):
        b = answer_bounds(questions[split], m, questions["train"])
        if not b:
            continue
        n = b["baseline_answer_len"]
        for label, key in ((f"trivial baseline (answer length {n})", "baseline"), ("ceiling of the layout", "oracle")):
            vals = " | ".join(f"{b[f'{key}_{k}']:.4f}" for k in KEYS)
            lines.append(f"| {split} | {len(questions[split])} | {label} | {vals} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="also write the table to this file")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of experiment=mrc_mlm")
    args = ap.parse_args(argv)
    text = bounds_table(args.overrides)
    sys.stdout.write(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
