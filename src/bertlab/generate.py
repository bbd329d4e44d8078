"""Generate texts with a trained conditional LM (experiment=cond_gen):

    python -m bertlab.generate ckpt_path=<file.ckpt> label=1 n=5 strategy=topk k=5
    python -m bertlab.generate ckpt_path=... label=negative n=3 strategy=beam beam_size=4 max_len=40
    python -m bertlab.generate ckpt_path=... label=1 strategy=topp p=0.9 temperature=0.8 seed=3

Prints one text a line. Strategies: greedy, temperature, topk (k), topp (p), beam
(beam_size); ``temperature`` applies to the sampling ones; ``max_len`` new tokens at most;
``seed`` makes sampling reproducible. Notebooks: :func:`generate_texts`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import hydra
from omegaconf import DictConfig

from bertlab.decoding.sampling import STRATEGIES, check_args
from bertlab.utils.checkpoint import load_run
from bertlab.utils.errors import ConfigError
from bertlab.utils.hydra_utils import exit_on_user_error, precheck_overrides, repo_root

CONFIG_DIR = os.path.join(repo_root(), "conf")
TASK = "conditional_generation"


def load_generator(ckpt_path: str):
    """(model in eval mode, datamodule) of a conditional-generation checkpoint."""
    model, datamodule, _ = load_run(ckpt_path, expect_task=TASK)
    datamodule.ensure_tokenizer()
    return model, datamodule


def generate_texts(ckpt_path: str | None = None, label: int | str = 1, n: int = 5, strategy: str = "topk", k: int = 5,
                   p: float = 0.9, temperature: float = 1.0, beam_size: int = 4, max_len: int = 126,
                   seed: int | None = 0, use_cache: bool = True, model: Any = None, datamodule: Any = None) -> list[str]:
    """``n`` texts for ``label`` (0/1 or a label name). Pass ``ckpt_path``, or an already
    loaded ``model`` and ``datamodule`` (:func:`load_generator`) to skip reloading. With
    ``strategy="beam"`` all ``n`` texts are the same best hypothesis (ask n=1)."""
    if model is None or datamodule is None:
        model, datamodule = load_generator(str(ckpt_path))
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise ConfigError("n", f"must be a positive integer, got {n!r}") from None
    if n <= 0:
        raise ConfigError("n", f"must be a positive integer, got {n}")
    try:
        lab = datamodule.label_id(label)
    except ValueError as err:
        raise ConfigError("label", str(err)) from None
    vocab = len(datamodule.ensure_tokenizer())
    try:
        check_args(strategy, vocab, k, p, temperature, beam_size, max_len)
    except ValueError as err:
        key = str(err).split(" ", 1)[0]
        raise ConfigError(key if key in ("strategy", "k", "p", "temperature", "beam_size", "max_len") else "strategy",
                          str(err)) from None
    ids = model.generate_ids([lab] * n, strategy=strategy, k=k, p=p, temperature=temperature, beam_size=beam_size,
                             max_len=max_len, seed=seed, use_cache=use_cache)
    return [datamodule.decode(t) for t in ids]


def run(cfg: DictConfig) -> list[str]:
    texts = generate_texts(cfg.ckpt_path, label=cfg.label, n=cfg.n, strategy=str(cfg.strategy), k=int(cfg.k),
                           p=float(cfg.p), temperature=float(cfg.temperature), beam_size=int(cfg.beam_size),
                           max_len=int(cfg.max_len), seed=cfg.seed, use_cache=bool(cfg.use_cache))
    sys.stdout.write("".join(t + "\n" for t in texts))
    sys.stdout.flush()
    return texts


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="generate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run(cfg)


def cli(argv: Sequence[str] | None = None) -> None:
    precheck_overrides(CONFIG_DIR, "generate", list(sys.argv[1:] if argv is None else argv))
    main()


__all__ = ["generate_texts", "load_generator", "STRATEGIES"]

if __name__ == "__main__":
    cli()
