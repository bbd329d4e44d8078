"""Value rules (utils/value_rules.py): the data keys' rules come from the DataModule the config
instantiates (issue 30 §4: no task's data keys in utils/)."""

from __future__ import annotations

import math

import pytest

from bertlab.utils.errors import ConfigError
from bertlab.utils.value_rules import ValueRule, declared_rules


def test_a_datamodule_declares_its_keys_rules_under_the_data_group():
    from bertlab.data.base import CharDataModule

    cws = {r.key: r for r in declared_rules("bertlab.data.cws_datamodule.CwsDataModule", "data")}
    ner = {r.key: r for r in declared_rules("bertlab.data.ner_datamodule.NerDataModule", "data")}
    base = {f"data.{r.key}" for r in CharDataModule.VALUE_RULES}
    assert {"data.batch_size", "data.max_len", "data.trim_vocab"} <= base
    assert set(ner) == base and set(cws) == base | {"data.val_every"}  # CWS adds its own key
    assert cws["data.val_every"] == ValueRule("data.val_every", "int", 1)


@pytest.mark.parametrize("target", [None, 3, "nope", "bertlab.data.nope.X", "bertlab.data.base.Nope", "os.path.join"])
def test_a_target_that_is_no_importable_class_declares_no_rules(target):
    assert declared_rules(target, "data") == ()  # instantiating it reports the bad target


@pytest.mark.parametrize(
    "rule,value,message",
    [
        (ValueRule("data.batch_size", "int", 1), -3, "config key 'data.batch_size': must be >= 1, got -3"),
        (ValueRule("data.batch_size", "int", 1), 2.5, "config key 'data.batch_size': expected an integer, got 2.5"),
        (ValueRule("x.lr", "number", 0, incl_low=False), 0, "config key 'x.lr': must be > 0, got 0"),
        (ValueRule("x.lr", "number", 0), math.inf, "config key 'x.lr': must be a finite number, got inf"),
        (
            ValueRule("c.*.decay", "number", 0, 1, incl_high=False),
            1,
            "config key 'c.ema.decay': must be >= 0 and < 1, got 1",
        ),
        (ValueRule("w", "choice", choices=("a", "b", 3)), "c", "config key 'w': must be one of a | b | 3, got 'c'"),
    ],
)
def test_a_broken_rule_names_the_key(rule, value, message):
    key = rule.key.replace("*", "ema")
    assert rule.matches(key)
    with pytest.raises(ConfigError) as err:
        rule.check(key, value)
    assert str(err.value) == message
