"""Hydra glue: resolvers, instantiation of callbacks/loggers, the one-line error wrapper."""

from __future__ import annotations

import errno
import fnmatch
import functools
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bertlab.utils.errors import BertlabError, ConfigError, StorageFullError

log = logging.getLogger(__name__)


def repo_root() -> str:
    """The checkout the package runs from (it holds conf/ and data/), else the cwd."""
    here = Path(__file__).resolve().parents[3]
    return str(here) if (here / "conf").is_dir() else os.getcwd()


def _best_precision(accelerator: str = "gpu") -> str:
    from bertlab.utils.precision import best_precision

    return best_precision(accelerator)


def default_tokenizer(pretrained: Any, offline: str = "char", pretrained_tokens: str = "wordpiece") -> str:
    """``data.tokenizer``'s default (conf/data/*.yaml): with a checkpoint loaded
    (``encoder.pretrained``), the tokens it was pretrained on (``pretrained_tokens``:
    ``wordpiece`` for a Hugging Face BERT; ``encoder.pretrained_tokenizer`` of the encoder
    config, ``char`` for the small models pretrained here), else ``offline`` (a fresh encoder:
    the data config's choice)."""
    return str(pretrained_tokens) if pretrained not in (None, "", "null") else str(offline)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", repo_root)
    if not OmegaConf.has_resolver("pid"):
        # part of run folder names, so two jobs started in the same microsecond never collide
        OmegaConf.register_new_resolver(
            "pid", lambda: str(os.getpid()), use_cache=True
        )  # one value per process: submitit jobs must not re-resolve the sweep dir
    if not OmegaConf.has_resolver("default_tokenizer"):  # data.tokenizer's default (conf/data/*.yaml)
        OmegaConf.register_new_resolver("default_tokenizer", default_tokenizer)
    if not OmegaConf.has_resolver("best_precision"):  # ${best_precision:gpu}: bertlab/utils/precision.py
        OmegaConf.register_new_resolver("best_precision", _best_precision)


register_resolvers()


def set_threads(cfg: DictConfig) -> None:
    """``threads=N``: torch's intra-op threads (null: torch's default, all cores)."""
    threads = cfg.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def instantiate_list(cfg: DictConfig | None, what: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a group such as callbacks or logger."""
    from hydra.utils import instantiate

    out: list[Any] = []
    if not cfg:
        return out
    for name, conf in cfg.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.debug("instantiating %s %s", what, name)
            out.append(instantiate(conf))
    return out


def find_user_error(err: BaseException | None) -> BertlabError | None:
    """The BertlabError behind ``err``: hydra's instantiate and Lightning wrap exceptions."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, BertlabError):
            return err
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk: the user's to fix
            return StorageFullError(err.filename, err.strerror or "no space left on device")
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def exit_on_user_error(fn: Callable) -> Callable:
    """Turn a BertlabError (even a wrapped one) into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user = find_user_error(err)
            if user is None:
                raise
            print(f"bertlab: error: {user}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper


# Hydra's own flags that take a value as the next argument (``--cfg job``, ``-p pkg``, ...)
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--info",
    "-i",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


def hydra_overrides(argv: list[str]) -> list[str]:
    """The ``key=value`` overrides of a command line, without Hydra's flags and their values."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.startswith("-"):
            skip = a in _FLAGS_WITH_VALUE  # ``--cfg=job`` carries its value itself
        else:
            out.append(a)
    return out


def precheck_overrides(config_dir: str, config_name: str, argv: list[str]) -> None:
    """Compose the config once with the command-line overrides (first value of each sweep)
    so that an unknown key or group option stops with one line naming it, exit status 2."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from bertlab.utils.startup_checks import check_overrides

    args = hydra_overrides(argv)
    if not args:
        return
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except HydraException as err:
        print(f"bertlab: error: {str(err).strip().splitlines()[0]}", file=sys.stderr, flush=True)
        sys.exit(2)
    for ov in parsed:
        moved = MOVED_KEYS.get(ov.get_key_element().lstrip("+~"))
        if moved is not None:
            print(
                f"bertlab: error: {ConfigError(ov.get_key_element().lstrip('+~'), moved)}", file=sys.stderr, flush=True
            )
            sys.exit(2)
    plain = []
    for ov in parsed:
        if ov.get_key_element().startswith(("hydra.", "hydra/", "+hydra", "~hydra")):
            continue
        if ov.is_sweep_override():
            first = next(iter(ov.sweep_string_iterator()), None)
            if first is None:  # range/interval sweeps: leave them to hydra
                continue
            plain.append(f"{ov.get_key_element()}={first}")
        else:
            plain.append(ov.input_line)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=plain)
            groups = [o for o in plain if _is_group_override(config_dir, o)]
            base = compose(config_name=config_name, overrides=groups) if len(groups) < len(plain) else cfg
        check_override_types(base, cfg, [o for o in plain if o not in groups])
        check_overrides(cfg, [o for o in plain if o not in groups])
        validate_config(cfg)
    except ConfigError as err:
        print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except HydraException as err:
        text = f"{err}\n{err.__cause__ or ''}"
        key = None
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("full_key:"):
                key = line.split(":", 1)[1].strip()
        if key and "not in struct" in text:
            msg = f"config key '{key}' does not exist (to add a new key on purpose: +{key}=...)"
        else:
            msg = text.strip().splitlines()[0]
        print(f"bertlab: error: {msg}", file=sys.stderr, flush=True)
        sys.exit(2)
    finally:
        GlobalHydra.instance().clear()


# --------------------------------------------------------------------------- validation
def _is_group_override(config_dir: str, override: str) -> bool:
    """``data=ner_resume`` / ``+experiment=x`` choose a config group (a folder of conf/)."""
    key = override.split("=", 1)[0].lstrip("+~")
    return "=" in override and os.path.isdir(
        os.path.join(config_dir, key.replace(".", "/").replace("@", "/").split("/@")[0])
    )


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


_MISSING = object()


def _select(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    """(found, value); an interpolation that cannot be resolved here (``${hydra:...}``) counts
    as not found."""
    value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=False)
    if value is _MISSING:
        return False, None
    return True, value


#: keys whose values legitimately take several types (Lightning's "warn", "auto", time strings)
MIXED_TYPE_KEYS = (
    "trainer.deterministic",
    "trainer.devices",
    "trainer.accelerator",
    "trainer.strategy",
    "trainer.val_check_interval",
    "trainer.precision",
    "trainer.num_nodes",
    "trainer.fast_dev_run",
    "trainer.limit_*",
    "trainer.overfit_batches",
    "trainer.max_time",
    "trainer.profiler",
)


def check_override_types(base: DictConfig, cfg: DictConfig, overrides: list[str]) -> None:
    """A command-line value must have the type of the key's default: an integer for an integer
    key (``trainer.max_epochs=abc`` is refused), a number for a float key, a boolean for a
    boolean key; ``null`` is always accepted (disables an option). Keys whose default is null
    or a string, new keys (``+key=``) and interpolations are not checked here."""
    from omegaconf import ListConfig

    for ov in overrides:
        if "=" not in ov or ov.startswith(("~", "+")):
            continue
        key = ov.split("=", 1)[0]
        if any(fnmatch.fnmatchcase(key, pat) for pat in MIXED_TYPE_KEYS):
            continue
        found_old, old = _select(base, key)
        found_new, new = _select(cfg, key)
        if not found_old or not found_new or old is None or new is None:
            continue
        if isinstance(old, bool):
            ok = isinstance(new, bool)
        elif isinstance(old, int):
            ok = isinstance(new, int) and not isinstance(new, bool)
        elif isinstance(old, float):
            ok = isinstance(new, (int, float)) and not isinstance(new, bool)
        elif isinstance(old, (DictConfig, ListConfig)):
            ok = isinstance(new, (DictConfig, ListConfig))
            if not ok:
                raise ConfigError(
                    key, f"expected a {'list' if isinstance(old, ListConfig) else 'mapping'}, got {new!r}"
                )
        else:
            ok = True
        if not ok:
            raise ConfigError(key, f"expected {_type_name(old)} (like its default {old!r}), got {new!r}")


#: (key pattern, kind, low, high, inclusive low[, inclusive high]): checked on the composed
#: config of every task. kind "int" or "number" (a number must be finite: ``inf`` / ``nan``
#: are refused); a missing key or a null value is not checked.
RANGE_RULES: list[tuple] = [
    ("data.batch_size", "int", 1, math.inf, True),
    ("data.eval_batch_size", "int", 1, math.inf, True),
    ("data.max_len", "int", 3, math.inf, True),
    ("data.num_workers", "int", 0, math.inf, True),
    ("data.pool_batches", "int", 1, math.inf, True),
    ("data.max_train_chars", "int", 1, math.inf, True),
    ("data.max_eval_sentences", "int", 1, math.inf, True),
    ("data.val_every", "int", 1, math.inf, True),
    ("seed", "int", 0, 2**32 - 1, True),
    ("threads", "int", 1, math.inf, True),
    ("trainer.max_epochs", "int", -1, math.inf, True),
    ("trainer.max_steps", "int", -1, math.inf, True),
    ("trainer.accumulate_grad_batches", "int", 1, math.inf, True),
    ("trainer.log_every_n_steps", "int", 1, math.inf, True),
    ("trainer.check_val_every_n_epoch", "int", 1, math.inf, True),
    ("trainer.gradient_clip_val", "number", 0, math.inf, True),
    ("optimizer.lr", "number", 0, math.inf, False),
    ("optimizer.weight_decay", "number", 0, math.inf, True),
    ("optimizer.lr_multipliers.*", "number", 0, math.inf, False),
    ("scheduler.warmup_steps", "int", 0, math.inf, True),
    # lr factors: a negative factor is gradient ascent
    ("scheduler.final_factor", "number", 0, math.inf, True),
    ("scheduler.schedule.*", "number", 0, math.inf, True),
    ("encoder.num_layers", "int", 1, math.inf, True),
    ("encoder.keep_layers", "int", 1, math.inf, True),
    ("encoder.hidden_size", "int", 1, math.inf, True),
    ("encoder.num_attention_heads", "int", 1, math.inf, True),
    ("encoder.intermediate_size", "int", 1, math.inf, True),
    ("*dropout*", "number", 0, 1, True),
    ("callbacks.*.every_n_train_steps", "int", 0, math.inf, True),
    ("callbacks.model_checkpoint.save_top_k", "int", -1, math.inf, True),
    # bertlab.callbacks.ema.EMA: ema <- d * ema + (1 - d) * w
    ("callbacks.*.decay", "number", 0, 1, True, False),
    ("nonfinite_loss_max_skips", "int", 1, math.inf, True),
]
#: keys that moved: old key -> the one-line hint naming the new key
MOVED_KEYS: dict[str, str] = {
    "encoder.trim_vocab": "moved to the data group: use data.trim_vocab=none|simplified|corpus",
}
#: keys whose value must be one of a few words
CHOICE_RULES: dict[str, tuple[Any, ...]] = {
    "nonfinite_loss": ("stop", "skip"),
    "data.trim_vocab": ("none", "simplified", "corpus"),  # bertlab.data.vocab.MODES
    "data.tokenizer": ("char", "wordpiece"),  # bertlab.data.tokenization.TOKENIZER_MODES
    # Lightning's precision inputs (lightning_fabric.connector._PRECISION_INPUT)
    "trainer.precision": (
        "32-true",
        "16-mixed",
        "bf16-mixed",
        "16-true",
        "bf16-true",
        "64-true",
        "transformer-engine",
        "transformer-engine-float16",
        "32",
        "16",
        "bf16",
        "64",
        32,
        16,
        64,
    ),
}


def _leaves(node: DictConfig, prefix: str = ""):
    for key in node.keys():
        full = f"{prefix}{key}"
        if full == "hydra":
            continue
        value = OmegaConf.select(node, str(key), default=None, throw_on_resolution_failure=False)
        if isinstance(value, DictConfig):
            yield from _leaves(value, full + ".")
        else:
            yield full, value


def check_range(
    key: str, value: Any, kind: str, low: float, high: float, incl_low: bool = True, incl_high: bool = True
) -> None:
    """A :class:`ConfigError` naming ``key`` unless ``value`` is a finite number (an integer for
    kind "int") between ``low`` and ``high``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind == "int" and not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())))
    ):
        raise ConfigError(key, f"expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value!r}")
    lo_ok = value >= low if incl_low else value > low
    hi_ok = value <= high if incl_high else value < high
    if not lo_ok or not hi_ok:
        lo = f"{'>=' if incl_low else '>'} {low:g}"
        rng = lo if high == math.inf else f"{lo} and {'<=' if incl_high else '<'} {high:.10g}"
        raise ConfigError(key, f"must be {rng}, got {value!r}")


def validate_config(cfg: DictConfig) -> None:
    """Refuse values no run can use (``data.batch_size=-3``, ``optimizer.lr=0``, a dropout of 1.5)
    with a :class:`ConfigError` naming the key, before anything is read or written."""
    for key, hint in MOVED_KEYS.items():
        if OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False) is not None:
            raise ConfigError(key, hint)
    for key, value in _leaves(cfg):
        if key in CHOICE_RULES and value is not None and value not in CHOICE_RULES[key]:
            choices = " | ".join(dict.fromkeys(map(str, CHOICE_RULES[key])))
            raise ConfigError(key, f"must be one of {choices}, got {value!r}")
        for pattern, kind, low, high, incl, *rest in RANGE_RULES:
            if not (key == pattern or ("*" in pattern and fnmatch.fnmatchcase(key, pattern))):
                continue
            if value is None:
                break
            check_range(key, value, kind, low, high, incl, rest[0] if rest else True)
            break
    from bertlab.utils.startup_checks import check_consistency

    check_consistency(cfg)
