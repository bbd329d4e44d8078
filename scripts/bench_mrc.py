"""Questions/s of the MLM reading-comprehension decoders, in one run:

    python scripts/bench_mrc.py [--ckpt runs/.../last.ckpt] [--questions 100] [--threads 2] [--out FILE.json]

Decodes the same test questions (all passages of a question in one batch, whole questions
per batch as in evaluation) with ``constrained`` (one forward pass, the post's method),
``argmax`` (one pass, no constraint) and ``autoregressive`` (one forward pass per [MASK]
slot, same constraint), and prints questions/s of each and the ratio. Without --ckpt a
fresh default model (experiment=mrc_mlm) is timed: speed does not depend on training, but
an untrained model rarely says [SEP] early, which is the autoregressive worst case.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--override", action="append", default=[], help="config override for the fresh model")
    ap.add_argument("--out", default=None, help="also write the JSON result here (for python -m bertlab.reproduce mrc)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.ckpt:
        from bertlab.runs import load_run

        model, dm, _ = load_run(args.ckpt, {"max_eval_questions": args.questions})
        dm.setup("test")
    else:
        import hydra
        from hydra import compose, initialize_config_dir

        from bertlab.nn.encoders import resolve_vocab_file
        from bertlab.utils.hydra_utils import register_resolvers, repo_root

        register_resolvers()
        with initialize_config_dir(config_dir=os.path.join(repo_root(), "conf"), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    "experiment=mrc_mlm",
                    f"data.max_eval_questions={args.questions}",
                    "paths.output_dir=/tmp",
                    *args.override,
                ],
            )
        dm = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
        model = hydra.utils.instantiate(cfg.model, **dm.model_kwargs(), _recursive_=False)
    model.eval()
    batches = list(dm.test_dataloader())
    n_q = len(dm.questions["test"])
    n_p = len(dm.features["test"])
    result = {"questions": n_q, "passages": n_p, "threads": args.threads}
    from bertlab.tasks.mlm_reading_comprehension import score_answers

    for decoding in ("constrained", "argmax", "autoregressive"):
        preds = {}
        t0 = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                for i, a in zip(batch["index"].tolist(), model.decode_batch(batch, decoding)):
                    preds[i] = {"tokens": a.tokens, "start": a.start, "score": a.score}
        sec = time.perf_counter() - t0
        metrics, _ = score_answers(dm, "test", preds)
        result[decoding] = {
            "questions_per_s": n_q / sec,
            "seconds": sec,
            "final": metrics["final"],
            "mean_answer_tokens": sum(len(p["tokens"]) for p in preds.values()) / max(len(preds), 1),
        }
    result["speedup_constrained_vs_autoregressive"] = (
        result["constrained"]["questions_per_s"] / result["autoregressive"]["questions_per_s"]
    )
    print(json.dumps(result, indent=2))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
