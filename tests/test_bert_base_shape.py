"""The bert-base-chinese shape, checked without its weights (issue 28 §2): a randomly
initialised 12-layer x 768 BERT of the shipped data/vocab/bert-base-chinese/bert_config.json,
saved with ``save_pretrained`` and loaded through ``encoder.pretrained=<dir>`` exactly as the
real checkpoint would be, trains every task family for two steps, is validated and tested on
one batch. The task families and their data limits are those of scripts/bench_bert_base.py
(which measures the same runs' step time and memory)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_bert_base", ROOT / "scripts" / "bench_bert_base.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


BENCH = _bench()
#: the fewest steps and examples that still run every code path of a family: two training
#: steps of two examples, one validation and one test batch, no checkpoint files (1 GB each)
SHORT = [
    "debug=default",
    "threads=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "data.batch_size=2",
    "data.eval_batch_size=2",
    "callbacks.model_checkpoint=null",
    "callbacks.resume_checkpoint=null",
    "callbacks.rich_progress_bar=null",
    "+trainer.enable_checkpointing=false",
]
#: generation samples 50 texts per label at test with up to 126 new tokens: a handful here
EXTRA = {
    "cond_gen": ["model.generation.num_samples=1", "model.generation.val_num_samples=1", "model.generation.max_len=4"],
    "pretrain_mlm": ["data.packed_batch_size=1"],
    # reading comprehension: 96-character passage windows instead of 255 (a third of the tokens)
    "mrc_mlm": ["data.max_passage_len=96", "data.window_stride=64"],
    "mrc_seq2seq": ["data.max_passage_len=96", "data.window_stride=64"],
}


@pytest.fixture(scope="module")
def bert_base_dir(tmp_path_factory) -> Path:
    return BENCH.make_bert_base_lookalike(tmp_path_factory.mktemp("bert_base") / "bert-base-chinese")


@pytest.mark.slow
@pytest.mark.parametrize("family", list(BENCH.FAMILIES))
def test_every_task_family_trains_at_the_bert_base_shape(family, bert_base_dir, tmp_path):
    from tests.conftest import compose_cfg

    from bertlab.train import train

    cfg = compose_cfg(
        tmp_path, [*BENCH.FAMILIES[family], f"encoder.pretrained={bert_base_dir}", *SHORT, *EXTRA.get(family, [])]
    )
    metrics, objs = train(cfg)
    encoder = objs["model"].encoder
    assert encoder.config.num_hidden_layers == 12 and len(encoder.encoder.layer) == 12
    assert encoder.config.hidden_size == 768 and encoder.config.num_attention_heads == 12
    loss = metrics.get("train/loss", metrics.get("train/mlm_loss"))
    assert loss is not None and math.isfinite(loss), sorted(metrics)
    assert objs["trainer"].global_step == 2


@pytest.mark.parametrize("family", list(BENCH.FAMILIES))
def test_the_benchmark_commands_pass_the_start_up_checks(family, tmp_path):
    """Each command of scripts/bench_bert_base.py composes and passes bertlab's start-up checks
    (an experiment that renames a data key would otherwise break the benchmark silently)."""
    from bertlab.utils.hydra_utils import precheck_overrides

    model = tmp_path  # a folder with a config.json, as the checkpoint has
    (model / "config.json").write_text((ROOT / "data/vocab/bert-base-chinese/bert_config.json").read_text())
    cmd = BENCH.command(family, str(model), 3, 1, "cpu", str(tmp_path / "run"), batch_size=8)
    assert cmd[1:3] == ["-m", "bertlab.train"]
    precheck_overrides(str(ROOT / "conf"), "train", cmd[3:])  # exits 2 on a bad key or value
