"""Shared fixtures: the real config tree composed with tmp output paths (lightning-hydra-template style)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import bertlab.utils.hydra_utils  # noqa: F401  (registers resolvers)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


def compose_cfg(tmp_path: Path, overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.work_dir = str(ROOT)
        del cfg.hydra
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    def _make(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
        return compose_cfg(tmp_path, overrides, config_name)

    yield _make
    GlobalHydra.instance().clear()
