"""scripts/bench_mrc.py: the MLM reader's decoders and the seq2seq reader's (joint, the post's, and
per passage), cached and not, on the same questions in one run (fresh tiny models; no timing
assertions)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("bench_mrc", ROOT / "scripts" / "bench_mrc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_both_readers_cached_and_uncached_on_the_same_questions(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--questions", "2", "--repeats", "1", "--threads", "1", "--seq2seq-ckpt", "fresh", "--out", str(out)]
    args += ["--override", "data.max_answer_len=6", "--override", "encoder.num_layers=1"]
    assert _load().main(args) == 0
    r = json.loads(out.read_text())
    assert r["questions"] == 2 and r["passages"] >= 2
    mlm = r["constrained"]["questions_per_s"]
    decoders = [f"seq2seq_{m}{c}" for m in ("joint", "greedy", "beam") for c in ("", "_nocache")]
    for name in decoders:
        assert r[f"speedup_mlm_vs_{name}"] == pytest.approx(mlm / r[name]["questions_per_s"])
    for name in ("seq2seq_beam", "seq2seq_beam_nocache"):
        assert r[name]["beam_size"] == 4
    assert r["seq2seq_joint_nocache"]["beam_size"] == 1  # the post's decoder: topk 1, no cache
    # the cache changes the cost of a step, never the answer: same tokens -> same scores
    for mode in ("joint", "greedy", "beam"):
        cached, uncached = r[f"seq2seq_{mode}"], r[f"seq2seq_{mode}_nocache"]
        for key in ("final", "mean_answer_tokens", "encoder_calls_per_question"):
            assert cached[key] == pytest.approx(uncached[key]), (mode, key)
    # the one-pass MLM reader runs the encoder once per batch of passages
    assert r["constrained"]["encoder_calls_per_question"] <= 1.0


@pytest.mark.slow
def test_decoders_option_times_only_the_named_ones(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--questions", "1", "--repeats", "1", "--threads", "1", "--seq2seq-ckpt", "fresh", "--out", str(out)]
    args += ["--override", "data.max_answer_len=4", "--override", "encoder.num_layers=1"]
    args += ["--decoders", "seq2seq_joint_nocache"]
    assert _load().main(args) == 0
    r = json.loads(out.read_text())
    timed = {k for k, v in r.items() if isinstance(v, dict)}
    assert timed == {"constrained", "seq2seq_joint_nocache"}  # the MLM base always runs
    assert set(k for k in r if k.startswith("speedup")) == {"speedup_mlm_vs_seq2seq_joint_nocache"}
    cpu = r["seq2seq_joint_nocache"]["cpu_seconds"] / r["constrained"]["cpu_seconds"]
    assert r["cpu_speedup_mlm_vs_seq2seq_joint_nocache"] == pytest.approx(cpu)
