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


def _all_experiments() -> list[str]:
    root = CONF / "experiment"
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def _experiments_with_max_steps(make_cfg) -> list[str]:
    """Every experiment whose composed trainer sets max_steps > 0."""
    return [n for n in _all_experiments() if int(make_cfg([f"experiment={n}"]).trainer.max_steps) > 0]


def last_validated_batch(per_epoch: int, val_check_interval, check_val_every_n_epoch, batches: int) -> bool:
    """Whether Lightning validates after global batch ``batches`` (1-based) of epochs of ``per_epoch``
    batches: a float interval f validates batch b of an epoch (1-based) when b % int(per_epoch * f)
    == 0; an int interval N counts within the epoch, or over all batches when
    check_val_every_n_epoch is None."""
    if isinstance(val_check_interval, int) and check_val_every_n_epoch is None:
        return batches % val_check_interval == 0
    every = val_check_interval if isinstance(val_check_interval, int) else max(1, int(per_epoch * val_check_interval))
    rest = batches % per_epoch or per_epoch
    return rest % every == 0


def test_last_validated_batch_rule():
    # cws_crf: 1,614 batches an epoch, f = 0.25 -> every 403; 2420 = 1614 + 2 x 403
    assert last_validated_batch(1614, 0.25, 1, 2420) and not last_validated_batch(1614, 0.25, 1, 2418)
    assert last_validated_batch(2168, 600, 1, 1800) and not last_validated_batch(2168, 0.25, 1, 1800)
    assert last_validated_batch(100, 30, None, 120) and not last_validated_batch(100, 30, 1, 120)


def test_the_experiments_with_max_steps_are_found(make_cfg):
    found = _experiments_with_max_steps(make_cfg)
    assert {"cws_crf", "cws_softmax", "cws_crf_naive", "pretrain_mlm", "pretrain_albert"} <= set(found), found


@pytest.mark.slow
def test_every_experiment_with_max_steps_validates_its_last_step(make_cfg):
    """max_steps must land on a validation, else the last steps are trained but never validated
    (nor checkpointed as best). The epoch length is the real training loader's (data set up, no
    training); experiments sharing a data config share one setup."""
    import hydra
    from omegaconf import OmegaConf

    from bertlab.train import resolve_vocab_file

    lengths: dict[str, int] = {}
    checked = []
    for name in _experiments_with_max_steps(make_cfg):
        cfg = make_cfg([f"experiment={name}"])
        t = cfg.trainer
        steps = int(t.max_steps)
        if steps <= 0:
            continue
        key = OmegaConf.to_yaml(cfg.data) + str(resolve_vocab_file(cfg.encoder))
        if key not in lengths:
            dm = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
            dm.setup("fit")
            lengths[key] = len(dm.train_dataloader())
        per_epoch = lengths[key]
        if t.get("limit_train_batches") is not None:
            lim = t.limit_train_batches
            per_epoch = int(per_epoch * lim) if isinstance(lim, float) else min(per_epoch, int(lim))
        batches = steps * int(t.get("accumulate_grad_batches") or 1)
        if int(t.max_epochs) > 0:
            assert batches <= per_epoch * int(t.max_epochs), f"{name}: max_epochs ends the run before max_steps"
        vci = t.val_check_interval
        vci = int(vci) if isinstance(vci, int) else float(vci)
        ok = last_validated_batch(per_epoch, vci, t.get("check_val_every_n_epoch"), batches)
        assert ok, (
            f"{name}: max_steps {steps} ({per_epoch} batches an epoch, val_check_interval {vci}) is not validated"
        )
        checked.append(name)
    assert len(checked) >= 5, checked


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
