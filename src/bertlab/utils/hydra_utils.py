"""Hydra glue: resolvers, instantiation of callbacks/loggers, the one-line error wrapper."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from bertlab.utils.errors import BertlabError

log = logging.getLogger(__name__)


def repo_root() -> str:
    """The checkout the package runs from (it holds conf/ and data/), else the cwd."""
    here = Path(__file__).resolve().parents[3]
    return str(here) if (here / "conf").is_dir() else os.getcwd()


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", repo_root)
    if not OmegaConf.has_resolver("pid"):
        # part of run folder names, so two jobs started in the same microsecond never collide
        OmegaConf.register_new_resolver("pid", lambda: str(os.getpid()))


register_resolvers()


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


def precheck_overrides(config_dir: str, config_name: str, argv: list[str]) -> None:
    """Compose the config once with the command-line overrides (first value of each sweep)
    so that an unknown key or group option stops with one line naming it, exit status 2."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    args = [a for a in argv if not a.startswith("-")]
    if not args:
        return
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except HydraException as err:
        print(f"bertlab: error: {str(err).strip().splitlines()[0]}", file=sys.stderr, flush=True)
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
            compose(config_name=config_name, overrides=plain)
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
