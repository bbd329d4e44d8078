"""Callbacks no training run may go without (issue 30 §5 declared them in config instead of
train.py adding them): a config that drops one is refused before anything runs, naming it.
Without ResumeState a resume is not exact, without RunConfigInCheckpoint a resume cannot be
checked, without NonFiniteLossGuard a NaN loss trains on, without ResumeHistory a resumed
history is duplicated."""

from __future__ import annotations

import pytest
from tests.conftest import compose_cfg

from bertlab.train import REQUIRED_CALLBACKS, check_required_callbacks
from bertlab.utils.errors import ConfigError

DROPPED = {
    "resume_state": "ResumeState",
    "resume_history": "ResumeHistory",
    "run_config": "RunConfigInCheckpoint",
    "nonfinite_loss_guard": "NonFiniteLossGuard",
}


@pytest.mark.parametrize("callbacks", ["default", "none", "crf"])
def test_every_shipped_callbacks_config_has_them(tmp_path, callbacks):
    experiment = ["experiment=cws_crf"] if callbacks == "crf" else []
    check_required_callbacks(compose_cfg(tmp_path, [*experiment, f"callbacks={callbacks}"]))


@pytest.mark.parametrize("key", list(DROPPED))
def test_a_config_without_one_is_refused_naming_it(tmp_path, key):
    cfg = compose_cfg(tmp_path, [f"callbacks.{key}=null"])
    with pytest.raises(ConfigError, match=DROPPED[key]) as err:
        check_required_callbacks(cfg)
    assert str(err.value).startswith("config key 'callbacks'")
    assert len(REQUIRED_CALLBACKS) == len(DROPPED)
