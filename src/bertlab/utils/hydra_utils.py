"""Hydra glue: resolvers, instantiation of callbacks/loggers, the one-line error wrapper."""

from __future__ import annotations

import errno
import fnmatch
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bertlab.utils.errors import BertlabError, ConfigError, StorageFullError
from bertlab.utils.value_rules import ValueRule, declared_rules

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


def task_attribute(target: str, attr: str) -> str:
    """A class attribute the task ``target`` (``model._target_``) declares: its monitor metric
    (``monitor``, e.g. ``val/f1``) or that metric's mode (``monitor_mode``: max | min). A task
    that declares none is a :class:`ConfigError` naming ``model._target_``."""
    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except Exception as err:  # noqa: BLE001  an import error of the task's module, or a bad name
        raise ConfigError("model._target_", f"cannot import {target!r}: {err}") from err
    value = getattr(cls, attr, None)
    if not value:
        raise ConfigError(
            "model._target_",
            f"{target} declares no {attr!r}: a task names the validation metric that selects its best "
            "checkpoint (class attributes monitor = 'val/<metric>', monitor_mode = 'max' or 'min')",
        )
    return str(value)


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
    if not OmegaConf.has_resolver("task_monitor"):  # ${task_monitor:${model._target_}}: conf/train.yaml
        OmegaConf.register_new_resolver("task_monitor", functools.partial(task_attribute, attr="monitor"))
    if not OmegaConf.has_resolver("task_monitor_mode"):
        OmegaConf.register_new_resolver("task_monitor_mode", functools.partial(task_attribute, attr="monitor_mode"))


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
            assert ov.input_line is not None  # set for every override parsed from a command line
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


#: the value rules of the keys every run has (:mod:`bertlab.utils.value_rules`); the data keys'
#: rules are declared by the DataModule (``VALUE_RULES``, :func:`data_rules`)
VALUE_RULES: tuple[ValueRule, ...] = (
    ValueRule("seed", "int", 0, 2**32 - 1),
    ValueRule("threads", "int", 1),
    ValueRule("trainer.max_epochs", "int", -1),
    ValueRule("trainer.max_steps", "int", -1),
    ValueRule("trainer.accumulate_grad_batches", "int", 1),
    ValueRule("trainer.log_every_n_steps", "int", 1),
    ValueRule("trainer.check_val_every_n_epoch", "int", 1),
    ValueRule("trainer.gradient_clip_val", "number", 0),
    ValueRule("optimizer.lr", "number", 0, incl_low=False),
    ValueRule("optimizer.weight_decay", "number", 0),
    ValueRule("optimizer.lr_multipliers.*", "number", 0, incl_low=False),
    ValueRule("scheduler.warmup_steps", "int", 0),
    # lr factors: a negative factor is gradient ascent
    ValueRule("scheduler.final_factor", "number", 0),
    ValueRule("scheduler.schedule.*", "number", 0),
    ValueRule("encoder.num_layers", "int", 1),
    ValueRule("encoder.keep_layers", "int", 1),
    ValueRule("encoder.hidden_size", "int", 1),
    ValueRule("encoder.num_attention_heads", "int", 1),
    ValueRule("encoder.intermediate_size", "int", 1),
    ValueRule("*dropout*", "number", 0, 1),
    ValueRule("callbacks.*.every_n_train_steps", "int", 0),
    ValueRule("callbacks.model_checkpoint.save_top_k", "int", -1),
    # bertlab.callbacks.ema.EMA: ema <- d * ema + (1 - d) * w
    ValueRule("callbacks.*.decay", "number", 0, 1, incl_high=False),
    ValueRule("nonfinite_loss_max_skips", "int", 1),
    ValueRule("nonfinite_loss", "choice", choices=("stop", "skip")),
    # Lightning's precision inputs (lightning_fabric.connector._PRECISION_INPUT)
    ValueRule(
        "trainer.precision",
        "choice",
        choices=(
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
    ),
)
#: keys that moved: old key -> the one-line hint naming the new key
MOVED_KEYS: dict[str, str] = {
    "encoder.trim_vocab": "moved to the data group: use data.trim_vocab=none|simplified|corpus",
}


def data_rules(cfg: DictConfig) -> tuple[ValueRule, ...]:
    """The value rules the config's DataModule (``data._target_``) declares for its keys."""
    return declared_rules(
        OmegaConf.select(cfg, "data._target_", default=None, throw_on_resolution_failure=False), "data"
    )


def _leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key in map(str, node.keys()):
        full = f"{prefix}{key}"
        if full == "hydra":
            continue
        value = OmegaConf.select(node, key, default=None, throw_on_resolution_failure=False)
        if isinstance(value, DictConfig):
            yield from _leaves(value, full + ".")
        else:
            yield full, value


def check_values(node: DictConfig, rules: Sequence[ValueRule], prefix: str = "") -> None:
    """A :class:`ConfigError` for the first key of ``node`` (named ``<prefix><key>``) whose value
    breaks the first of ``rules`` that matches the key."""
    for key, value in _leaves(node, prefix):
        rule = next((r for r in rules if r.matches(key)), None)
        if rule is not None and value is not None:
            rule.check(key, value)


def validate_config(cfg: DictConfig) -> None:
    """Refuse values no run can use (``data.batch_size=-3``, ``optimizer.lr=0``, a dropout of 1.5)
    with a :class:`ConfigError` naming the key, before anything is read or written."""
    if "optimized_metric" in cfg:  # the task's monitor metric (conf/train.yaml): a task that declares none stops here
        cfg.get("optimized_metric")
    for key, hint in MOVED_KEYS.items():
        if OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False) is not None:
            raise ConfigError(key, hint)
    check_values(cfg, data_rules(cfg) + VALUE_RULES)
    from bertlab.utils.startup_checks import check_consistency

    check_consistency(cfg)
