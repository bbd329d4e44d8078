"""Start-up checks across config keys: constraints knowable before anything is read or trained.

Called by :func:`bertlab.utils.hydra_utils.validate_config` (so by ``precheck_overrides``,
before Hydra creates a run folder, and again at the start of ``train(cfg)``). Each failure
is a :class:`ConfigError` naming the key: one line, exit status 2.

* positions: ``data.max_len`` (special tokens included) must fit the encoder's
  ``max_position_embeddings`` (of the pretrained checkpoint's config.json when
  ``encoder.pretrained`` is a local folder, else of ``encoder.*`` / ``encoder.config_file``);
* heads: a fresh encoder's ``hidden_size`` must be divisible by ``num_attention_heads``;
* vocabulary: a local pretrained checkpoint's vocab (its vocab.txt, else ``encoder.vocab_file``)
  must have as many tokens as its embedding (``vocab_size`` in its config.json);
* a run that would do nothing: ``train=false test=false``, or training with
  ``trainer.limit_train_batches=0`` / ``trainer.max_steps=0`` / ``trainer.max_epochs=0``;
* validation: ``trainer.val_check_interval`` is a fraction of an epoch in (0, 1] (a float) or
  a number of training batches >= 1 (an integer);
* callbacks: an entry of ``callbacks`` that is a mapping without ``_target_`` (e.g.
  ``+callbacks.ema.decay=0.9`` where no ``ema`` callback is configured) would be ignored.

Constraints that need the data (the training set is empty, an integer
``val_check_interval`` above the batches of an epoch) are checked when the training loader
is built: :func:`check_training_batches`.

:func:`check_overrides` (called by ``precheck_overrides`` with the command line's overrides)
refuses ``encoder.num_layers=K`` given for a LOADED encoder: ``num_layers`` is the depth of a
fresh one (a checkpoint keeps all its layers); the old spelling of "keep the first K layers"
now reads ``encoder.keep_layers=K``, and saying it the old way is one line naming the new key.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bertlab.utils.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["check_char_budget", "check_consistency", "check_overrides", "check_training_batches", "encoder_geometry"]


def _get(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    except Exception:  # noqa: BLE001  an interpolation that cannot be resolved here
        return None


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _count_lines(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return sum(1 for _ in fh)  # as bertlab.nn.encoders counts a vocab
    except (OSError, UnicodeDecodeError):
        return None


def encoder_geometry(cfg: DictConfig) -> tuple[dict[str, Any], str]:
    """(the encoder's architecture numbers, where they come from): a local pretrained folder's
    config.json, else the ``encoder.*`` keys over ``encoder.config_file``."""
    pretrained = _get(cfg, "encoder.pretrained")
    if pretrained and os.path.isdir(str(pretrained)):
        found = _read_json(os.path.join(str(pretrained), "config.json"))
        if found is not None:
            return found, f"encoder.pretrained={pretrained}"
    if pretrained:  # a hub name (offline: checked when it is loaded)
        return {}, "encoder.pretrained"
    base = {}
    config_file = _get(cfg, "encoder.config_file")
    if config_file and os.path.isfile(str(config_file)):
        base = _read_json(str(config_file)) or {}
    for key in ("hidden_size", "num_attention_heads", "max_position_embeddings"):
        value = _get(cfg, f"encoder.{key}")
        if value is not None:
            base[key] = value
    return base, "encoder"


def check_consistency(cfg: DictConfig) -> None:
    """Raise a ConfigError for a combination of keys no run can use (module docstring)."""
    _check_run_does_something(cfg)
    _check_val_check_interval(_get(cfg, "trainer.val_check_interval"))
    _check_callbacks(cfg)
    if _get(cfg, "encoder") is None:
        return
    _check_encoder(cfg)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_run_does_something(cfg: DictConfig) -> None:
    if _get(cfg, "trainer") is None or _get(cfg, "train") is None:
        return  # not a training config (predict, generate, eval)
    train, test = bool(_get(cfg, "train")), bool(_get(cfg, "test"))
    if not train and not test:
        raise ConfigError("train", "train=false and test=false: the run would do nothing")
    if not train:
        return
    for key in ("trainer.limit_train_batches", "trainer.max_steps", "trainer.max_epochs"):
        value = _get(cfg, key)
        if _is_number(value) and value == 0:
            raise ConfigError(key, f"{value!r} trains nothing (train=true); use train=false to only test a checkpoint")
    limit = _get(cfg, "trainer.limit_train_batches")
    if _is_number(limit) and (limit < 0 or (isinstance(limit, float) and limit > 1)):
        raise ConfigError(
            "trainer.limit_train_batches",
            f"must be a fraction of an epoch in (0, 1] (a float) or a number of batches >= 1 (an integer), got {limit!r}",
        )


def _check_val_check_interval(value: Any) -> None:
    if not _is_number(value):
        return  # null (Lightning's default: every epoch) or a time string
    ok = (0 < value <= 1) if isinstance(value, float) else value >= 1
    if not ok:
        raise ConfigError(
            "trainer.val_check_interval",
            f"must be a fraction of an epoch in (0, 1] (a float, e.g. 0.25) or a number of training batches >= 1 "
            f"(an integer), got {value!r}",
        )


def _known_callbacks() -> set[str]:
    """The callback names of the shipped callback sets (conf/callbacks/*.yaml)."""
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "..", "conf", "callbacks")
    names: set[str] = set()
    if os.path.isdir(folder):
        for f in os.listdir(folder):
            if f.endswith(".yaml"):
                node = OmegaConf.load(os.path.join(folder, f))
                names.update(str(k) for k in node if k != "defaults") if isinstance(node, DictConfig) else None
    return names


def _check_callbacks(cfg: DictConfig) -> None:
    callbacks = _get(cfg, "callbacks")
    if not isinstance(callbacks, DictConfig):
        return
    known = _known_callbacks()
    for name in map(str, callbacks):
        node = _get(cfg, f"callbacks.{name}")
        if isinstance(node, DictConfig) and "_target_" not in node:
            if name in known:  # an experiment adjusting a callback of a set that this run left out (callbacks=none)
                log.warning(
                    "callbacks.%s adjusts a callback this config does not have (callbacks=none?): ignored", name
                )
                continue
            raise ConfigError(
                f"callbacks.{name}",
                f"has no _target_ (keys: {', '.join(map(str, node))}), so it is not a callback and would be "
                f"ignored: this config has no {name} callback to set",
            )


def check_char_budget(selected: int, available: int, budget: int, first_len: int | None = None) -> None:
    """``data.max_train_chars`` must select at least one of the ``available`` training examples
    (called by the DataModules' random character budgets; ``first_len``: the length of the
    first example drawn, which did not fit)."""
    if selected == 0 and available > 0:
        longer = f" (the first example drawn has {first_len})" if first_len is not None else ""
        raise ConfigError(
            "data.max_train_chars",
            f"{budget} characters select none of the {available} training examples{longer}: nothing to train on; "
            f"raise it or use null (all)",
        )


def effective_train_batches(n_batches: int, limit: Any) -> int:
    """The training batches of an epoch under Lightning's ``limit_train_batches``."""
    if not _is_number(limit):
        return n_batches
    if isinstance(limit, float):
        return int(n_batches * limit) if limit < 1 else n_batches
    return min(n_batches, int(limit))


def check_training_batches(cfg: DictConfig, loader: Any, stats: dict[str, Any] | None = None) -> None:
    """Once the training loader is built (``loader``, or its number of batches; ``stats`` the DataModule's
    counts): refuse an empty training set (naming ``data.max_train_chars`` when that budget
    selected nothing), training triples of which none was located in its text, and an integer
    ``trainer.val_check_interval`` larger than an epoch (unless ``check_val_every_n_epoch`` is
    null: validation counted over the whole run)."""
    try:
        n_batches = loader if isinstance(loader, int) else len(loader)
    except TypeError:  # an iterable loader without a length: nothing to check
        return
    per_epoch = effective_train_batches(n_batches, _get(cfg, "trainer.limit_train_batches"))
    if n_batches == 0:
        budget = _get(cfg, "data.max_train_chars")
        if budget:
            raise ConfigError(
                "data.max_train_chars",
                f"{budget} characters select no training example (the first one drawn is longer): "
                f"nothing to train on; raise it or use null (all)",
            )
        raise ConfigError("data", "the training set is empty after reading and filtering: nothing to train on")
    stats = stats or {}
    gold = stats.get("train_triples", 0)
    if gold and stats.get("train_triples_not_found", 0) + stats.get("train_triples_beyond_max_len", 0) >= gold:
        raise ConfigError(
            "data.train_file",
            f"none of the {gold} training triples was located in its text ({stats.get('train_triples_not_found', 0)} "
            f"not found, {stats.get('train_triples_beyond_max_len', 0)} beyond data.max_len): nothing to learn",
        )
    interval = _get(cfg, "trainer.val_check_interval")
    if (
        isinstance(interval, int)
        and not isinstance(interval, bool)
        and interval > per_epoch
        and _get(cfg, "trainer.check_val_every_n_epoch") is not None
    ):
        raise ConfigError(
            "trainer.val_check_interval",
            f"{interval} training batches is more than an epoch ({per_epoch} batches): the run would never "
            f"validate; use at most {per_epoch}, a fraction such as 1.0, or trainer.check_val_every_n_epoch=null "
            f"to count batches across epochs",
        )


def _check_encoder(cfg: DictConfig) -> None:
    geo, source = encoder_geometry(cfg)
    max_len = _get(cfg, "data.max_len")
    positions = geo.get("max_position_embeddings")
    if isinstance(max_len, int) and isinstance(positions, int) and max_len > positions:
        where = "encoder.max_position_embeddings" if source == "encoder" else f"{source}'s config.json"
        raise ConfigError(
            "data.max_len",
            f"{max_len} tokens (special tokens [CLS]/[SEP] included) do not fit the encoder's "
            f"{positions} positions ({where}); use data.max_len <= {positions}",
        )
    if source == "encoder":
        hidden, heads = geo.get("hidden_size"), geo.get("num_attention_heads")
        if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 and hidden % heads:
            raise ConfigError(
                "encoder.hidden_size",
                f"{hidden} is not divisible by encoder.num_attention_heads={heads} "
                f"(each head gets hidden_size / heads dimensions)",
            )
    elif source.startswith("encoder.pretrained="):
        pretrained = str(_get(cfg, "encoder.pretrained"))
        vocab = os.path.join(pretrained, "vocab.txt")
        key = "encoder.pretrained"
        if not os.path.isfile(vocab):  # a trimmed vocab (data.trim_vocab) indexes this one's rows too
            vocab, key = str(_get(cfg, "encoder.vocab_file") or ""), "encoder.vocab_file"
        n, rows = (_count_lines(vocab) if vocab else None), geo.get("vocab_size")
        if n is not None and isinstance(rows, int) and n != rows:
            raise ConfigError(
                key,
                f"the vocab {vocab} has {n} tokens but the checkpoint {pretrained} has {rows} embedding rows "
                f"(vocab_size in its config.json): not this checkpoint's vocab",
            )


def check_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Raise a ConfigError for a command-line key that means something else than the user
    meant with this config: ``encoder.num_layers=K`` on a loaded encoder (null, or K equal to
    a local checkpoint's depth, change nothing and pass)."""
    pretrained = _get(cfg, "encoder.pretrained")
    if not pretrained:
        return
    depth = encoder_geometry(cfg)[0].get("num_hidden_layers")  # a local checkpoint's depth
    for ov in overrides:
        key, _, value = ov.partition("=")
        if key.lstrip("+~") != "encoder.num_layers" or value.strip() in ("null", "None", ""):
            continue
        if value.strip() == str(depth):  # all its layers: what a loaded encoder keeps anyway
            continue
        raise ConfigError(
            "encoder.num_layers",
            f"is the depth of a fresh encoder; encoder.pretrained={pretrained} is loaded with all its layers: "
            f"to keep its first {value} use encoder.keep_layers={value}",
        )
