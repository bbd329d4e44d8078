"""Shared fixtures: the real config tree composed with tmp output paths (lightning-hydra-template style),
and the socket guard (tests/netguard/bertlab_netguard.py): no test reaches a non-loopback
address, in this process or in any Python subprocess it starts."""

from __future__ import annotations

import os
import subprocess
import sys
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


def _install_socket_guard() -> None:
    """This process: patch socket.socket. Subprocesses: tests/netguard first on PYTHONPATH, so
    its sitecustomize.py installs the same guard at start-up; also when a test passes its own
    ``env=`` (Popen is wrapped to put the folder into that env's PYTHONPATH)."""
    guard_dir = str(Path(__file__).resolve().parent / "netguard")
    if guard_dir not in sys.path:
        sys.path.insert(0, guard_dir)
    import bertlab_netguard as guard

    if os.environ.get(guard.ALLOW_ENV) == "1":
        return
    guard.install()
    os.environ["PYTHONPATH"] = guard.with_guard_path(os.environ.get("PYTHONPATH"))
    original = subprocess.Popen.__init__
    if getattr(original, "_bertlab_guarded", False):
        return

    def __init__(self, *args, **kwargs):
        env = kwargs.get("env")
        if env is not None and all(isinstance(k, str) for k in env) and env.get(guard.ALLOW_ENV) != "1":
            kwargs["env"] = {**env, "PYTHONPATH": guard.with_guard_path(env.get("PYTHONPATH"))}
        original(self, *args, **kwargs)

    __init__._bertlab_guarded = True  # type: ignore[attr-defined]
    subprocess.Popen.__init__ = __init__  # type: ignore[method-assign]


_install_socket_guard()


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


#: the tiny encoder of the end-to-end tests (1 layer of width 32)
TINY_ENCODER = [
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
]

#: a tiny CWS+CRF run (1 layer of width 32, a few steps on a slice of the data, the trimmed
#: corpus vocabulary): real checkpoints for tests/test_checkpoint_verify.py and tests/test_export.py
TINY_CWS_RUN = [
    "experiment=cws_crf",
    "debug=default",
    *TINY_ENCODER,
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "data.max_eval_sentences=8",
    "data.max_train_chars=3000",
    "callbacks.rich_progress_bar=null",
    "callbacks.transition_heatmap=null",
    "threads=1",
    # the tests built on this run (export, checkpoint checks) are about one token per character
    "data.tokenizer=char",
]


@pytest.fixture(scope="session")
def tiny_cws_run(tmp_path_factory) -> Path:
    """The run folder of :data:`TINY_CWS_RUN`, trained once per session (~20 s on one core):
    ``checkpoints/last.ckpt``, ``checkpoints/best-step*.ckpt``, ``metrics.json``. Copy what you
    change."""
    from bertlab.train import train

    out = tmp_path_factory.mktemp("tiny_cws_run")
    train(compose_cfg(out, TINY_CWS_RUN))
    GlobalHydra.instance().clear()
    return out
