"""Rebuild a trained model and its DataModule from one checkpoint file (see
callbacks/run_config.py), with clear errors for missing, corrupt or foreign files."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from bertlab.callbacks.run_config import CKPT_KEY
from bertlab.nn.encoders import resolve_vocab_file
from bertlab.utils.errors import CheckpointError


def read_checkpoint(path: str) -> dict[str, Any]:
    if not path:
        raise CheckpointError("ckpt_path: missing (pass ckpt_path=<file.ckpt>)")
    if not os.path.isfile(path):
        raise CheckpointError(f"ckpt_path: no such file: {path}")
    try:
        # our own files: they hold plain Python objects besides tensors
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"ckpt_path: {path} is not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"ckpt_path: {path} is not a Lightning checkpoint")
    if CKPT_KEY not in ckpt:
        raise CheckpointError(f"ckpt_path: {path} was not written by bertlab's train (no run config inside)")
    return ckpt


def load_run(path: str, data_overrides: Mapping[str, Any] | None = None, expect_task: str | None = None):
    """(model in eval mode, datamodule, saved config) from a checkpoint written by bertlab.train."""
    ckpt = read_checkpoint(path)
    cfg = OmegaConf.create(ckpt[CKPT_KEY]["config"])
    target = cfg.model._target_
    if expect_task and expect_task not in target:
        raise CheckpointError(f"ckpt_path: {path} is a {target.rsplit('.', 1)[-1]} checkpoint, not a {expect_task} one")
    if data_overrides:
        cfg.data = OmegaConf.merge(cfg.data, OmegaConf.create(dict(data_overrides)))
    model_cls = get_class(target)
    try:
        model = model_cls.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except (RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(f"ckpt_path: {path} does not match {target} ({str(err).splitlines()[0]})") from err
    model.eval()
    datamodule = instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    if hasattr(datamodule, "keep_ids"):
        datamodule.keep_ids = model.hparams.get("vocab_keep_ids")
    return model, datamodule, cfg
