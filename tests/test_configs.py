"""Every config composes, alone and as each experiment; bad keys name themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["data", "encoder", "head", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "debug"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes(make_cfg, experiment):
    cfg = make_cfg([f"experiment={experiment}"])
    assert cfg.model._target_ and cfg.data._target_ and cfg.trainer._target_
    from omegaconf import OmegaConf

    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes(make_cfg, group, option):
    from omegaconf import OmegaConf

    cfg = make_cfg([f"{group}={option}"])
    OmegaConf.to_container(cfg, resolve=True)


def test_unknown_key_is_an_error_naming_it(make_cfg):
    with pytest.raises(ConfigCompositionException, match="trainer.max_epochz"):
        make_cfg(["trainer.max_epochz=3"])


def test_paths_point_at_the_shipped_data(make_cfg):
    cfg = make_cfg()
    for f in cfg.data.train_files:
        assert Path(f).is_file(), f
    assert Path(cfg.encoder.vocab_file).is_file()


@pytest.mark.parametrize("name", ["eval", "predict"])
def test_eval_and_predict_configs_compose(make_cfg, name):
    cfg = make_cfg(["ckpt_path=x.ckpt"], config_name=name)
    assert cfg.ckpt_path == "x.ckpt"


def test_cli_reports_an_unknown_key_in_one_line():
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "bertlab.train", "trainer.max_epochz=3"],
        capture_output=True,
        text=True,
        cwd=CONF.parent,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "bertlab: error: config key 'trainer.max_epochz' does not exist "
        "(to add a new key on purpose: +trainer.max_epochz=...)"
    )


def test_hydra_flags_and_their_values_are_not_overrides():
    from bertlab.utils.hydra_utils import hydra_overrides

    argv = ["experiment=cws_crf", "--cfg", "job", "-p", "optimizer", "--multirun", "seed=1,2", "--cfg=all", "-m"]
    assert hydra_overrides(argv) == ["experiment=cws_crf", "seed=1,2"]


@pytest.mark.parametrize(
    "override,message",
    [
        ("nonfinite_loss=ignore", "config key 'nonfinite_loss': must be one of stop | skip, got 'ignore'"),
        ("nonfinite_loss_max_skips=0", "config key 'nonfinite_loss_max_skips': must be >= 1, got 0"),
    ],
)
def test_choice_and_range_rules_name_the_key(make_cfg, override, message):
    from bertlab.utils.errors import ConfigError
    from bertlab.utils.hydra_utils import validate_config

    validate_config(make_cfg(["experiment=cws_crf"]))  # the defaults pass
    with pytest.raises(ConfigError) as err:
        validate_config(make_cfg(["experiment=cws_crf", override]))
    assert str(err.value) == message


@pytest.mark.slow
def test_the_main_jobs_last_step_is_validated(make_cfg):
    """make train: max_steps must land on a validation, else the last steps are trained but
    never validated (nor checkpointed as best). Lightning validates every int(L * f) batches of
    an epoch of L batches (f = val_check_interval)."""
    import hydra

    from bertlab.train import resolve_vocab_file

    cfg = make_cfg(["experiment=cws_crf"])
    dm = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    dm.setup("fit")
    per_epoch = len(dm.train_dataloader())
    every = int(per_epoch * float(cfg.trainer.val_check_interval))
    steps = int(cfg.trainer.max_steps)
    done_epochs, rest = divmod(steps, per_epoch)
    assert done_epochs < int(cfg.trainer.max_epochs)
    # Lightning validates batch b of an epoch when (b + 1) % every == 0, not at an epoch's end otherwise
    assert (rest > 0 and rest % every == 0) or (rest == 0 and per_epoch % every == 0), (per_epoch, every, steps)


@pytest.mark.parametrize("override", ["encoder.trim_vocab=corpus", "+encoder.trim_vocab=corpus"])
def test_the_old_trim_vocab_key_names_the_new_one_in_one_line(override):
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "bertlab.train", override],
        capture_output=True,
        text=True,
        cwd=CONF.parent,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "bertlab: error: config key 'encoder.trim_vocab': moved to the data group: use data.trim_vocab=none|simplified|corpus"
    )


def test_trim_vocab_is_a_data_key_read_by_the_datamodule(make_cfg):
    cfg = make_cfg(["experiment=cws_crf"])
    assert cfg.data.trim_vocab == "corpus" and "trim_vocab" not in cfg.encoder
    from omegaconf import OmegaConf, open_dict

    from bertlab.utils.errors import ConfigError
    from bertlab.utils.hydra_utils import validate_config

    with open_dict(cfg):
        cfg.encoder.trim_vocab = "corpus"  # e.g. from an old local config file
    with pytest.raises(ConfigError, match="moved to the data group"):
        validate_config(cfg)
    assert OmegaConf.select(cfg, "data.trim_vocab") == "corpus"
