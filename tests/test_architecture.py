"""docs/architecture.md stays true: toy tasks built from its "adding a task" recipe train and
test through the shared interfaces (the second one, tests/toy_task/, exactly the recipe's files,
composed through conf/ and trained through ``bertlab.train``), and the import layering holds."""

from __future__ import annotations

import ast
import inspect
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from tests.conftest import TINY_ENCODER as TINY_OVERRIDES
from tests.conftest import compose_cfg
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


@dataclass(frozen=True)
class ToyEvalData:
    labels: list[int]
    decode: object


# 2. the DataModule: reads, tokenises (vocabulary from CharDataModule), batches, declares its eval data
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

    def eval_data(self, split):
        return ToyEvalData([y for _, y in self.records[split]], lambda p: self.decode(split, p))


# 3. the task: model, loss, decoding, metric wiring; the rest comes from BertlabTask
class ToyTask(EvalCollector, BertlabTask):
    monitor = "val/acc"

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
        data = self.eval_data(split, ToyEvalData)
        pred = data.decode(predictions)
        gold = data.labels
        return {"acc": sum(p == g for p, g in zip(pred, gold)) / len(gold)}, pred


def test_a_toy_task_from_the_recipe_trains_and_tests(tmp_path):
    pl.seed_everything(0)
    dm = ToyDataModule(VOCAB)
    dm.setup("fit")
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


def test_a_task_gets_its_own_family_of_evaluation_data():
    from types import SimpleNamespace

    from bertlab.data.tagging import TaggingEvalData

    dm = ToyDataModule(VOCAB)
    with pytest.raises(RuntimeError, match=r"before setup\('fit'\)"):  # model_kwargs never reads the data itself
        dm.model_kwargs()
    dm.setup("fit")
    optimizer = {"_target_": "torch.optim.Adam", "lr": 1e-3, "lr_multipliers": {}}
    model = ToyTask(TINY_ENCODER, optimizer, {"type": "constant"}, **dm.model_kwargs())
    model._trainer = SimpleNamespace(datamodule=dm)  # what a Trainer gives the task
    assert model.eval_data("val", ToyEvalData).labels == [y for _, y in dm.records["val"]]
    with pytest.raises(TypeError, match="ToyTask scores TaggingEvalData; ToyDataModule.eval_data gives ToyEvalData"):
        model.eval_data("val", TaggingEvalData)


# --------------------------------------------------------------------------- the recipe's toy task
TOY = ROOT / "tests" / "toy_task"
DOC = ROOT / "docs" / "architecture.md"


def recipe_files() -> list[str]:
    """The files of docs/architecture.md's "Adding a task" table, in order (backticked paths)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Adding a task") :]
    section = section[: section.find("\n## ", 3) if "\n## " in section[3:] else len(section)]
    return re.findall(r"^\| *\d+ *\| *`([^`]+)`", section, flags=re.M)


def toy_path(recipe_path: str) -> str:
    """Where tests/toy_task/ holds a recipe file: src/bertlab/ is the toy package toylab/,
    <name> is toy, <head> is mean_pool."""
    return recipe_path.replace("src/bertlab/", "toylab/").replace("<name>", "toy").replace("<head>", "mean_pool")


def test_the_recipe_names_every_file_the_toy_task_needed():
    files = recipe_files()
    code = [f for f in files if not f.startswith("tests/")]
    toy = {p.relative_to(TOY).as_posix() for p in TOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert sorted(toy_path(f) for f in code) == sorted(toy)
    assert len(files) == len(code) + 3  # and its three test files (reader+DataModule, head, end to end)
    count = re.search(r"A new task is (\w+) files", DOC.read_text(encoding="utf-8"))
    words = {"eleven": 11, "twelve": 12, "ten": 10}
    assert count is not None and words[count.group(1)] == len(files)


def _toy_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, seed, n in (("train", 0, 96), ("val", 1, 24), ("test", 2, 24)):
        rows = read_toy(n, seed)
        (folder / f"{split}.tsv").write_text("".join(f"{y}\t{t}\n" for t, y in rows), encoding="utf-8")
    return folder


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    """Compose the toy task (tests/toy_task/conf on Hydra's search path, its package importable)."""
    monkeypatch.syspath_prepend(str(TOY))
    corpus = _toy_corpus(tmp_path / "corpus")

    def compose(*overrides: str):
        return compose_cfg(
            tmp_path / "run",
            [
                f"hydra.searchpath=[file://{TOY / 'conf'}]",
                "experiment=toy",
                "debug=default",
                *TINY_OVERRIDES,
                f"data.data_dir={corpus}",
                "callbacks.rich_progress_bar=null",
                "threads=1",
                *overrides,
            ],
        )

    return compose


@pytest.mark.slow
def test_the_toy_task_from_the_recipe_trains_through_bertlab_train(toy_task):
    from bertlab.train import train

    cfg = toy_task()
    assert cfg.optimized_metric == "val/acc" and cfg.callbacks.model_checkpoint.mode == "max"  # the task's monitor
    assert "head" not in cfg and cfg.callbacks.get("crf_mechanism") is None  # post 1's settings stay with post 1
    metrics, objects = train(cfg)
    assert 0.0 <= metrics["val/acc"] <= 1.0 and metrics["test"]["n_examples"] == 24
    assert metrics["train_tokens_per_s"] > 0  # TokenThroughput's run metrics reach metrics.json
    names = {type(c).__name__ for c in objects["trainer"].callbacks}
    assert {"ResumeState", "ResumeHistory", "NonFiniteLossGuard", "RunConfigInCheckpoint"} <= names
    assert type(objects["datamodule"].train_dataloader()).__name__ == "ResumableDataLoader"  # resumable mid-epoch


def test_a_task_without_a_monitor_metric_is_a_config_error(toy_task, monkeypatch):
    from toylab.tasks.toy import ToyModule

    from bertlab.utils.errors import ConfigError
    from bertlab.utils.hydra_utils import find_user_error, validate_config

    monkeypatch.setattr(ToyModule, "monitor", "")
    with pytest.raises(Exception) as err:  # before any data is read
        validate_config(toy_task())
    user = find_user_error(err.value)
    assert isinstance(user, ConfigError) and user.key == "model._target_" and "monitor" in str(user)


def _conf_targets(group: str) -> dict[str, str]:
    out = {}
    for folder in (ROOT / "conf" / group, TOY / "conf" / group):
        for path in sorted(folder.glob("*.yaml")):
            target = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("_target_")
            if target:
                out[path.name] = target
    return out


def test_every_datamodule_takes_the_debug_size_keys(monkeypatch):
    """debug=default (conf/debug/default.yaml) sets these data keys for every task."""
    from hydra.utils import get_class

    monkeypatch.syspath_prepend(str(TOY))
    debug_keys = set(yaml.safe_load((ROOT / "conf/debug/default.yaml").read_text(encoding="utf-8"))["data"])
    for name, target in _conf_targets("data").items():
        params = inspect.signature(get_class(target).__init__).parameters
        assert debug_keys <= set(params), f"conf/data/{name}: {target} lacks {sorted(debug_keys - set(params))}"


def test_every_task_declares_its_monitor_metric(monkeypatch):
    from hydra.utils import get_class

    monkeypatch.syspath_prepend(str(TOY))
    for name, target in _conf_targets("model").items():
        cls = get_class(target)
        assert re.fullmatch(r"val/\w+", cls.monitor), f"conf/model/{name}: {target}.monitor = {cls.monitor!r}"
        assert cls.monitor_mode in ("max", "min"), f"conf/model/{name}: {target}.monitor_mode"


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
