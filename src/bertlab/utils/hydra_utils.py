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


def exit_on_user_error(fn: Callable) -> Callable:
    """Turn a BertlabError into one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BertlabError as err:
            print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper
