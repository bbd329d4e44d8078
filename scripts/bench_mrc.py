"""Questions/s of the MLM reading-comprehension decoders, in one run:

    python scripts/bench_mrc.py [--ckpt runs/.../last.ckpt] [--questions 100] [--threads 2] [--out FILE.json]
        [--seq2seq-ckpt runs/.../last.ckpt | fresh] [--repeats 3] [--decoders constrained,seq2seq_joint,...]

Decodes the same test questions (all passages of a question in one batch, whole questions
per batch as in evaluation) with ``constrained`` (one forward pass, the post's method),
``argmax`` (one pass, no constraint) and ``autoregressive`` (one forward pass per [MASK]
slot, same constraint), and prints questions/s of each and the ratio. Without --ckpt a
fresh default model (experiment=mrc_mlm) is timed: speed does not depend on training, but
an untrained model rarely says [SEP] early, which is the autoregressive worst case.

``--seq2seq-ckpt`` adds post 6's comparison: the UniLM seq2seq reader
(experiment=mrc_seq2seq; ``fresh`` = an untrained default one) decoding the SAME questions
with ``joint`` (the post's decoder: one answer per question, all its passages decoded
together, a question at a time; ``--joint-topk``, default the checkpoint's, the post's 1; needs
a model trained passage first, else it is skipped), and per passage with ``greedy`` and
``beam`` (``--beam-size``, default the checkpoint's), each with the key/value cache (bertlab's
default: every new answer token runs the encoder at one position) and without it
(``*_nocache``: every step re-runs the encoder over source + answer so far, as bert4keras'
AutoRegressiveDecoder does in the post's seq2seq example; ``seq2seq_joint_nocache`` is the
post's setting, its ~6x), whole questions per batch with the same eval_batch_size, same threads,
and the ratios of the MLM one-pass reader's questions/s to each. Every decoder is timed
``--repeats`` times (the median is reported); ``encoder_calls_per_question`` counts the
encoder's forward passes; ``acc`` / ``final`` are each decoder's scores on these questions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def _fresh(experiment: str, questions: int, overrides: list[str]):
    """A fresh model of ``experiment`` and its DataModule (speed does not depend on training)."""
    import hydra
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bertlab.nn.encoders import resolve_vocab_file
    from bertlab.utils.hydra_utils import register_resolvers, repo_root

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.join(repo_root(), "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"experiment={experiment}", f"data.max_eval_questions={questions}", "paths.output_dir=/tmp"]
            + overrides,
        )
    dm = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    dm.setup("fit")
    model = hydra.utils.instantiate(cfg.model, **dm.model_kwargs(), _recursive_=False)
    return model, dm


def _load(ckpt: str | None, experiment: str, questions: int, overrides: list[str]):
    if ckpt and ckpt != "fresh":
        from bertlab.runs import load_run

        model, dm, _ = load_run(ckpt, {"max_eval_questions": questions})
        dm.setup("test")
    else:
        model, dm = _fresh(experiment, questions, overrides)
    model.eval()
    return model, dm


def time_decoder(model, dm, batches, decoding: str, repeats: int, **options) -> dict:
    """Decode every batch ``repeats`` times: the median seconds, the scores of the last run."""
    calls = [0]
    hook = model.encoder.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    times, cpu = [], []
    try:
        for _ in range(repeats):
            preds, calls[0] = {}, 0
            c0 = time.process_time()
            t0 = time.perf_counter()
            with torch.inference_mode():
                for batch in batches:
                    for i, a in zip(batch["index"].tolist(), model.decode_batch(batch, decoding, **options)):
                        preds[i] = {"tokens": a.tokens, "start": a.start, "score": a.score}
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    finally:
        hook.remove()
    sec = statistics.median(times)
    from bertlab.tasks.mlm_reading_comprehension import score_answers

    metrics, _ = score_answers(dm.eval_data("test"), preds)
    n_q = len(dm.questions["test"])
    return {
        "questions_per_s": n_q / sec,
        "seconds": sec,
        "seconds_all_repeats": times,
        # this process's CPU seconds: on a shared machine less sensitive to the other jobs than wall time
        "cpu_seconds": statistics.median(cpu),
        "cpu_seconds_all_repeats": cpu,
        "encoder_calls_per_question": calls[0] / max(n_q, 1),
        "acc": metrics["acc"],
        "f1": metrics["f1"],
        "final": metrics["final"],
        "mean_answer_tokens": sum(len(p["tokens"]) for p in preds.values()) / max(len(preds), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--override", action="append", default=[], help="config override for the fresh model")
    ap.add_argument("--out", default=None, help="also write the JSON result here (for python -m bertlab.reproduce mrc)")
    ap.add_argument("--seq2seq-ckpt", default=None, help="a mrc_seq2seq checkpoint, or 'fresh' (untrained)")
    ap.add_argument("--beam-size", type=int, default=None, help="seq2seq beam (default: the checkpoint's)")
    ap.add_argument("--joint-topk", type=int, default=None, help="joint decoder's beam (default: the checkpoint's)")
    ap.add_argument("--repeats", type=int, default=3, help="time each decoder this many times, report the median")
    ap.add_argument(
        "--decoders",
        default=None,
        help="comma list of the decoders to time (result names, e.g. seq2seq_joint_nocache,seq2seq_greedy); "
        "default all; the MLM 'constrained' one always runs (the ratios' base)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, dm = _load(args.ckpt, "mrc_mlm", args.questions, args.override)
    batches = list(dm.test_dataloader())
    n_q = len(dm.questions["test"])
    n_p = len(dm.features["test"])
    result = {"questions": n_q, "passages": n_p, "threads": args.threads, "repeats": args.repeats}
    wanted = None if args.decoders is None else {d.strip() for d in args.decoders.split(",")} | {"constrained"}
    for decoding in ("constrained", "argmax", "autoregressive"):
        if wanted is None or decoding in wanted:
            result[decoding] = time_decoder(model, dm, batches, decoding, args.repeats)
    if "autoregressive" in result:
        result["speedup_constrained_vs_autoregressive"] = (
            result["constrained"]["questions_per_s"] / result["autoregressive"]["questions_per_s"]
        )
    if args.seq2seq_ckpt:
        s2s, s2s_dm = _load(args.seq2seq_ckpt, "mrc_seq2seq", args.questions, args.override)
        ids = [q.id for q in s2s_dm.questions["test"]]
        if ids != [q.id for q in dm.questions["test"]]:
            raise SystemExit("--seq2seq-ckpt: its test questions differ from the MLM reader's (another data config?)")
        s2s_dm.hparams.eval_batch_size = dm.hparams.eval_batch_size  # the same whole-question batches
        s2s_batches = list(s2s_dm.test_dataloader())
        beam = args.beam_size or int(s2s.hparams.beam_size)
        topk = args.joint_topk or int(s2s.hparams.get("joint_topk", 1))
        mlm = result["constrained"]["questions_per_s"]
        for suffix, cache in (("", True), ("_nocache", False)):
            runs = {}
            if s2s.hparams.get("source_order") == "passage_first":
                runs["joint"] = {"joint_topk": topk}
            runs.update(greedy={}, beam={"beam_size": beam})
            for decoding, options in runs.items():
                name = f"seq2seq_{decoding}{suffix}"
                if wanted is not None and name not in wanted:
                    continue
                result[name] = time_decoder(
                    s2s, s2s_dm, s2s_batches, decoding, args.repeats, use_cache=cache, **options
                )
                if decoding != "greedy":
                    result[name]["beam_size"] = next(iter(options.values()))
                result[f"speedup_mlm_vs_{name}"] = mlm / result[name]["questions_per_s"]
                result[f"cpu_speedup_mlm_vs_{name}"] = (
                    result[name]["cpu_seconds"] / result["constrained"]["cpu_seconds"]
                )
    print(json.dumps(result, indent=2))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
