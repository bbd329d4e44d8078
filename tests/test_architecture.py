"""docs/architecture.md stays true: a toy task built from its "adding a task" recipe trains and
tests through the shared interfaces, and the import layering holds."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from bertlab.data.base import CharDataModule
from bertlab.data.collate import pad_collate
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalCollector

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "bertlab"
VOCAB = str(ROOT / "data/vocab/bert-base-chinese/vocab.txt")
TINY_ENCODER = {
    "model_type": "bert",
    "vocab_file": VOCAB,
    "config_file": str(ROOT / "data/vocab/bert-base-chinese/bert_config.json"),
    "num_layers": 1,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


# 1. the reader: raw data -> (text, label) records (here: does the text contain 好?)
def read_toy(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    texts = ["".join(rng.choice("天地人好你我他的") for _ in range(rng.randint(3, 10))) for _ in range(n)]
    return [(t, int("好" in t)) for t in texts]


# 2. the DataModule: reads, tokenises (vocabulary from CharDataModule), batches
class ToyDataModule(CharDataModule):
    def __init__(self, vocab_file: str, trim_vocab: str = "corpus", batch_size: int = 8):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.records: dict[str, list[tuple[str, int]]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.records:
            return
        self.records = {"train": read_toy(64, 0), "val": read_toy(16, 1), "test": read_toy(16, 2)}
        self.build_tokenizer(ch for text, _ in self.records["train"] for ch in text)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        feats = [
            {"input_ids": self.tokenizer.encode(t).ids, "label": y, "index": i}
            for i, (t, y) in enumerate(self.records[split])
        ]

        def collate(fs):
            return {**pad_collate(fs, pad_id=self.tokenizer.pad_id), "label": torch.tensor([f["label"] for f in fs])}

        return DataLoader(feats, batch_size=self.hparams.batch_size, shuffle=shuffle, collate_fn=collate)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def decode(self, split, predictions):
        return [predictions.get(i) for i in range(len(self.records[split]))]


# 3. the task: model, loss, decoding, metric wiring; the rest comes from BertlabTask
class ToyTask(EvalCollector, BertlabTask):
    eval_prog_bar = "acc"

    def __init__(self, encoder, optimizer, scheduler=None, vocab_keep_ids=None):
        super().__init__(encoder=encoder, optimizer=optimizer, scheduler=scheduler, vocab_keep_ids=vocab_keep_ids)
        self.encoder, _ = self.build_encoder()
        self.classifier = nn.Linear(self.encoder.config.hidden_size, 2)

    def forward(self, batch):
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long())
        return self.classifier(hidden.last_hidden_state[:, 0])

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self(batch), batch["label"])
        self.log("train/loss", loss, batch_size=batch["input_ids"].size(0))
        return loss

    def eval_predictions(self, batch):
        return dict(zip(batch["index"].tolist(), self(batch).argmax(-1).tolist()))

    def eval_score(self, split, predictions):
        dm = self.trainer.datamodule
        pred = dm.decode(split, predictions)
        gold = [y for _, y in dm.records[split]]
        return {"acc": sum(p == g for p, g in zip(pred, gold)) / len(gold)}, pred


def test_a_toy_task_from_the_recipe_trains_and_tests(tmp_path):
    pl.seed_everything(0)
    dm = ToyDataModule(VOCAB)
    optimizer = {"_target_": "torch.optim.Adam", "lr": 1e-3, "lr_multipliers": {}}
    model = ToyTask(TINY_ENCODER, optimizer, {"type": "constant"}, **dm.model_kwargs())
    assert model.hparams.vocab_keep_ids == dm.keep_ids and len(dm.keep_ids) < 21128  # trimmed to the corpus
    trainer = pl.Trainer(
        max_steps=4,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(tmp_path),
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    test = model.last_metrics["test"]
    assert 0.0 <= test["acc"] <= 1.0 and len(model.last_outputs["test"]) == 16
    assert all(p in (0, 1) for p in model.last_outputs["test"])
    assert dm.save_outputs("test", model.last_outputs["test"], str(tmp_path)) == []  # the declared default


# --------------------------------------------------------------------------- layering
def _imports(path: Path) -> set[str]:
    """Every module a file imports (also inside functions), absolute names."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _violations(folder: str, forbidden) -> list[str]:
    return [
        f"{path.relative_to(SRC)} imports {mod}"
        for path in sorted((SRC / folder).rglob("*.py"))
        for mod in sorted(_imports(path))
        if forbidden(mod)
    ]


def test_utils_imports_nothing_above_it():
    assert _violations("utils", lambda m: m.startswith("bertlab.") and not m.startswith("bertlab.utils")) == []


def test_nn_is_plain_torch():
    banned = ("pytorch_lightning", "lightning", "hydra", "omegaconf", "bertlab.tasks", "bertlab.train")
    assert _violations("nn", lambda m: m.split(".")[0] in banned or m.startswith(banned)) == []


def test_tasks_import_no_cli_module():
    cli = (
        "bertlab.train",
        "bertlab.evaluate",
        "bertlab.predict",
        "bertlab.generate",
        "bertlab.report",
        "bertlab.reproduce",
    )
    assert _violations("tasks", lambda m: m in cli or m.startswith(tuple(c + "." for c in cli))) == []


def test_reproduce_plans_and_reporting_renders():
    """reproduce/<post>.py declares runs, seeds and which table: it reads no run file and draws
    nothing (no json / yaml / csv / matplotlib; ``base.py`` reads conf/eval.yaml for evaluate's
    overrides); reporting/ renders, never imports reproduce/, and only reporting/plots.py
    imports matplotlib (once, at module level, with the Agg backend)."""
    readers = ("json", "yaml", "csv", "matplotlib", "omegaconf")
    assert _violations("reproduce", lambda m: m.split(".")[0] in readers) == ["reproduce/base.py imports yaml"]
    assert _violations("reporting", lambda m: m.startswith("bertlab.reproduce")) == []
    assert _violations("reporting", lambda m: m.split(".")[0] == "matplotlib") == [
        "reporting/plots.py imports matplotlib",
        "reporting/plots.py imports matplotlib.pyplot",
    ]


#: the only metrics/ imports left in data/ (docs/architecture.md): tag-scheme grammar (tags -> spans)
#: for reading NER files, and the answer matcher that picks a CMRC window's training answer
DATA_USES_OF_METRICS = {
    "ner.py": {"bertlab.metrics.entities"},
    "ner_datamodule.py": {"bertlab.metrics.entities"},
    "mrc.py": {"bertlab.metrics.reading_comprehension"},
}


def test_data_computes_no_metrics_and_decodes_no_search():
    got = {}
    for path in sorted((SRC / "data").rglob("*.py")):
        mods = {m for m in _imports(path) if m.startswith(("bertlab.metrics", "bertlab.decoding"))}
        if mods:
            got[path.name] = mods
    assert got == DATA_USES_OF_METRICS


def test_every_datamodule_is_a_char_datamodule_and_every_task_a_bertlab_task():
    import importlib
    import inspect

    for folder, base, suffix in (("data", CharDataModule, "DataModule"), ("tasks", BertlabTask, "Module")):
        for path in sorted((SRC / folder).glob("*.py")):
            mod = importlib.import_module(f"bertlab.{folder}.{path.stem}")
            for name, cls in inspect.getmembers(mod, inspect.isclass):
                if (
                    cls.__module__ == mod.__name__
                    and name.endswith(suffix)
                    and issubclass(cls, pl.LightningModule | pl.LightningDataModule)
                ):
                    assert issubclass(cls, base), f"{mod.__name__}.{name} is not a {base.__name__}"
