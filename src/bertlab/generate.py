"""Generate texts with a trained conditional LM (experiment=cond_gen):

    python -m bertlab.generate ckpt_path=<file.ckpt> label=1 n=5 strategy=topk k=5
    python -m bertlab.generate ckpt_path=... label=negative n=3 strategy=beam beam_size=4 max_len=40
    python -m bertlab.generate ckpt_path=... label=1 strategy=topp p=0.9 temperature=0.8 seed=3

Prints one text a line. Strategies: greedy, temperature, topk (k), topp (p), beam
(beam_size); ``temperature`` applies to the sampling ones; ``max_len`` new tokens at most;
``seed`` makes sampling reproducible. Notebooks: :func:`generate_texts`.

Bad input (an unknown label, n <= 0, a non-integer n/k/beam_size/max_len/seed, k larger
than the vocabulary, p outside (0, 1], temperature <= 0, an unknown strategy, a missing
file or a checkpoint of another task) stops with one line naming the key and the value,
exit status 2.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import hydra
from omegaconf import DictConfig

from bertlab.decoding.sampling import STRATEGIES, check_args
from bertlab.runs import load_run
from bertlab.utils.checkout import warn_if_other_checkout
from bertlab.utils.cli_checks import check_output_file
from bertlab.utils.errors import ConfigError
from bertlab.utils.hydra_utils import exit_on_user_error, precheck_overrides, repo_root, set_threads

CONFIG_DIR = os.path.join(repo_root(), "conf")
TASK = "conditional_generation"


def load_generator(ckpt_path: str):
    """(model in eval mode, datamodule) of a conditional-generation checkpoint."""
    model, datamodule, _ = load_run(ckpt_path, expect_task=TASK)
    datamodule.ensure_tokenizer()
    return model, datamodule


def generate_texts(
    ckpt_path: str | None = None,
    label: int | str = 1,
    n: int = 5,
    strategy: str = "topk",
    k: int = 5,
    p: float = 0.9,
    temperature: float = 1.0,
    beam_size: int = 4,
    max_len: int = 126,
    seed: int | None = 0,
    use_cache: bool = True,
    model: Any = None,
    datamodule: Any = None,
) -> list[str]:
    """``n`` texts for ``label`` (0/1 or a label name). Pass ``ckpt_path``, or an already
    loaded ``model`` and ``datamodule`` (:func:`load_generator`) to skip reloading. With
    ``strategy="beam"`` all ``n`` texts are the same best hypothesis (ask n=1)."""
    # plain checks first: a bad value is reported before a checkpoint is read
    n = as_int("n", n)
    if n <= 0:
        raise ConfigError("n", f"must be a positive integer, got {n}")
    k, beam_size, max_len = as_int("k", k), as_int("beam_size", beam_size), as_int("max_len", max_len)
    p, temperature = as_float("p", p), as_float("temperature", temperature)
    seed = None if seed is None else as_int("seed", seed)
    try:
        check_args(strategy, None, k, p, temperature, beam_size, max_len)
    except ValueError as err:
        raise ConfigError(_arg_key(err), str(err)) from None
    if model is None or datamodule is None:
        model, datamodule = load_generator(str(ckpt_path))
    try:
        lab = datamodule.label_id(label)
    except ValueError as err:
        raise ConfigError("label", str(err)) from None
    vocab = len(datamodule.ensure_tokenizer())
    try:
        check_args(strategy, vocab, k, p, temperature, beam_size, max_len)
    except ValueError as err:
        raise ConfigError(_arg_key(err), str(err)) from None
    ids = model.generate_ids(
        [lab] * n,
        strategy=strategy,
        k=k,
        p=p,
        temperature=temperature,
        beam_size=beam_size,
        max_len=max_len,
        seed=seed,
        use_cache=use_cache,
    )
    return [datamodule.decode_ids(t) for t in ids]


def _arg_key(err: ValueError) -> str:
    """The argument a :func:`check_args` message starts with."""
    key = str(err).split(" ", 1)[0]
    return key if key in ("strategy", "k", "p", "temperature", "beam_size", "max_len") else "strategy"


def as_int(key: str, value: Any) -> int:
    """``value`` as an int (an int, an integral float or a numeric string), else a
    ConfigError naming ``key`` and the value."""
    if isinstance(value, bool):
        raise ConfigError(key, f"must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ConfigError(key, f"must be an integer, got {value!r}")


def as_float(key: str, value: Any) -> float:
    if not isinstance(value, bool):
        try:
            out = float(value)
        except (TypeError, ValueError):
            out = None
        if out is not None and math.isfinite(out):
            return out
    raise ConfigError(key, f"must be a finite number, got {value!r}")


def run(cfg: DictConfig) -> list[str]:
    if not isinstance(cfg.use_cache, bool):
        raise ConfigError("use_cache", f"must be true or false, got {cfg.use_cache!r}")
    check_output_file(cfg.get("output"), inputs=[cfg.ckpt_path])  # before the checkpoint is read
    set_threads(cfg)
    texts = generate_texts(
        cfg.ckpt_path,
        label=cfg.label,
        n=cfg.n,
        strategy=str(cfg.strategy),
        k=cfg.k,
        p=cfg.p,
        temperature=cfg.temperature,
        beam_size=cfg.beam_size,
        max_len=cfg.max_len,
        seed=cfg.seed,
        use_cache=cfg.use_cache,
    )
    if cfg.get("output"):
        with open(cfg.output, "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in texts))
    else:
        sys.stdout.write("".join(t + "\n" for t in texts))
        sys.stdout.flush()
    return texts


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="generate")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run(cfg)


def cli(argv: Sequence[str] | None = None) -> None:
    warn_if_other_checkout()
    precheck_overrides(CONFIG_DIR, "generate", list(sys.argv[1:] if argv is None else argv))
    main()


__all__ = ["generate_texts", "load_generator", "STRATEGIES"]

if __name__ == "__main__":
    cli()
