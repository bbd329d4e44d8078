"""Train (and test) a model: ``python -m bertlab.train experiment=cws_crf [key=value ...]``.

``train(cfg)`` is a plain function (tests call it with a composed config); ``main`` only
wraps it with ``@hydra.main`` and returns the metric named by ``optimized_metric`` so that
sweepers can optimise it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from bertlab.callbacks.run_config import RunConfigInCheckpoint
from bertlab.nn.encoders import resolve_vocab_file
from bertlab.utils.config import to_plain
from bertlab.utils.hydra_utils import (
    exit_on_user_error,
    instantiate_list,
    precheck_overrides,
    register_resolvers,
    repo_root,
)
from bertlab.utils.summary import print_summary

log = logging.getLogger(__name__)
register_resolvers()
CONFIG_DIR = os.path.join(repo_root(), "conf")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    return str(obj)


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit and/or test as the config says; returns (metrics, objects)."""
    start = time.time()
    out_dir = cfg.paths.output_dir
    os.makedirs(out_dir, exist_ok=True)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))

    datamodule = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    data_kwargs = datamodule.model_kwargs() if hasattr(datamodule, "model_kwargs") else {}
    model = hydra.utils.instantiate(cfg.model, **data_kwargs, _recursive_=False)
    if getattr(datamodule, "tokenizer", None) is not None:
        datamodule.tokenizer.save_vocab(os.path.join(out_dir, "vocab.txt"))
    callbacks = instantiate_list(cfg.get("callbacks"), "callback") + [RunConfigInCheckpoint(cfg)]
    loggers = instantiate_list(cfg.get("logger"), "logger")
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(to_plain(cfg))

    metrics: dict[str, Any] = {}
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if "val" in model.last_metrics:
            metrics["val_last"] = model.last_metrics["val"]
    test_ckpt = None
    if cfg.get("test", True):
        ckpt_cb = trainer.checkpoint_callback
        best = getattr(ckpt_cb, "best_model_path", "") if ckpt_cb else ""
        if cfg.get("train", True):
            test_ckpt = best if best and os.path.isfile(best) else None
        else:
            test_ckpt = cfg.get("ckpt_path")
        if cfg.get("train", True) and test_ckpt is None:
            log.warning("no best checkpoint: testing the current weights")
        trainer.test(model, datamodule=datamodule, ckpt_path=test_ckpt)
        metrics["test"] = model.last_metrics.get("test", {})
        outputs = model.last_outputs.get("test")
        if outputs is not None and hasattr(datamodule, "save_outputs"):
            metrics["prediction_files"] = datamodule.save_outputs("test", outputs, os.path.join(out_dir, "predictions"))

    throughput = next((c for c in callbacks if hasattr(c, "tokens_per_s")), None)
    if throughput is not None:
        metrics["train_tokens_per_s"] = throughput.tokens_per_s
        metrics["train_padding_fraction"] = throughput.padding_fraction
    metrics["test_checkpoint"] = test_ckpt
    metrics["data_stats"] = getattr(datamodule, "stats", {})
    metrics["wall_seconds"] = time.time() - start
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, ensure_ascii=False, default=_json_default)
    print_summary(metrics, title=f"{cfg.get('task_name', 'train')}: {out_dir}")
    return metrics, {"cfg": cfg, "model": model, "datamodule": datamodule, "trainer": trainer}


def metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric {name!r} not among the logged metrics: {sorted(k for k in metrics if '/' in k)}")
    return float(metrics[name])


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    metrics, _ = train(cfg)
    return metric_value(metrics, cfg.get("optimized_metric"))


def cli() -> None:
    """Entry point: one-line errors for bad overrides, then hydra."""
    import sys

    precheck_overrides(CONFIG_DIR, "train", sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
