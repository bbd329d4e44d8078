"""scripts/bench_generate.py: cached vs uncached tokens/s in one run, greedy tokens checked
identical (tiny models; no timing assertions)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_DATA = "data.max_train_chars=20000"


def _load():
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "scripts" / "bench_generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _result(capsys):
    out = capsys.readouterr().out
    return json.loads(out)


def test_fresh_tiny_model_both_modes_and_the_ratio(tmp_path, capsys):
    mod = _load()
    out = tmp_path / "bench.json"
    rc = mod.main(
        [
            "--size",
            "tiny",
            "--override",
            TINY_DATA,
            "--n",
            "2",
            "--max-len",
            "9",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    res = _result(capsys)
    assert res == json.loads(out.read_text(encoding="utf-8"))
    assert (res["layers"], res["hidden"], res["rows"], res["conditional"]) == (1, 32, 4, True)
    # fixed length by default: every row makes exactly max_len tokens in both modes
    assert res["cached"]["tokens"] == res["uncached"]["tokens"] == 4 * 9 and res["mean_text_tokens"] == 9
    assert res["greedy_identical"] is True and res["sampled_identical"] is True
    ratio = res["cached"]["tokens_per_s"] / res["uncached"]["tokens_per_s"]
    assert res["ratio_cached_over_uncached"] == pytest.approx(ratio)
    for mode in ("cached", "uncached"):
        assert res[mode]["tokens_per_s"] == pytest.approx(res[mode]["tokens"] / res[mode]["seconds"])


def test_sampling_strategy_still_checks_greedy_and_a_mismatch_fails(monkeypatch, capsys):
    mod = _load()
    model, _ = mod.fresh_model("tiny", [TINY_DATA])
    res = mod.bench(model, n=2, max_len=6, repeats=1, strategy="topk", k=3, stop_at_sep=True)
    assert res["greedy_identical"] is True and 0 <= res["mean_text_tokens"] <= 6
    # a cache that changed the tokens must be reported (and make main exit 1)
    real = model.generate_ids

    def broken(labels, use_cache=True, **kw):
        ids = real(labels, use_cache=use_cache, **kw)
        return [r[:-1] + [r[-1] + 1] if use_cache and r else r for r in ids]

    monkeypatch.setattr(model, "generate_ids", broken)
    assert mod.bench(model, n=1, max_len=5, repeats=1)["greedy_identical"] is False
    monkeypatch.setattr(mod, "fresh_model", lambda size, overrides: (model, None))
    assert mod.main(["--size", "tiny", "--n", "1", "--max-len", "5", "--repeats", "1", "--threads", "1"]) == 1


def test_a_missing_checkpoint_is_one_error_line(tmp_path, capsys):
    mod = _load()
    assert mod.main(["--ckpt", str(tmp_path / "nope.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "nope.ckpt" in err


@pytest.mark.slow
def test_a_trained_tiny_checkpoint(tmp_path, capsys):
    from tests.conftest import compose_cfg

    from bertlab.train import train

    cfg = compose_cfg(
        tmp_path,
        [
            "experiment=cond_gen",
            "encoder.num_layers=1",
            "encoder.hidden_size=32",
            "encoder.num_attention_heads=2",
            "encoder.intermediate_size=64",
            TINY_DATA,
            "data.max_eval_sentences=10",
            "callbacks.rich_progress_bar=null",
            "logger=csv",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "trainer.limit_val_batches=1",
            "test=false",
            "model.generation.val_num_samples=0",
        ],
    )
    train(cfg)
    best = sorted((tmp_path / "checkpoints").glob("best-*.ckpt"))
    assert best, list((tmp_path / "checkpoints").iterdir())
    mod = _load()
    capsys.readouterr()  # the training summary
    rc = mod.main(["--ckpt", str(best[0]), "--n", "2", "--max-len", "8", "--repeats", "1", "--threads", "1"])
    assert rc == 0
    res = _result(capsys)
    assert res["model"] == str(best[0]) and res["greedy_identical"] is True
    assert res["cached"]["tokens"] == res["uncached"]["tokens"] == 2 * 2 * 8
