"""The Optuna sampler of ``conf/hparams_search/*.yaml``: a TPE sampler for studies that are resumed.

``hydra.sweeper.storage=sqlite:///study.db`` keeps a study across sessions, but the plugin
builds a new ``TPESampler(seed)`` every session: its random start-up draws start over, so a
resumed study re-ran trial 0's exact parameters, then trial 1's ... :class:`ResumableTPESampler`
(set as ``hydra.sweeper.sampler._target_``, same arguments as ``TPESampler``):

* is seeded with ``seed + <trials the study already holds>`` (read from the first trial number
  it is asked about; a new study: ``seed``, so a first session proposes exactly what
  ``TPESampler(seed)`` proposes);
* never proposes a parameter set that another trial of the study already has (complete,
  failed, pruned or running): a value that would lead only to such sets (it completes one, or
  every completion of it over the remaining parameters was tried) is drawn again, at random
  among the values that do not (a categorical) or up to ``max_redraws`` times (a numeric
  distribution). Only a used-up search space (every set of a small grid tried) repeats a set,
  with a WARNING.

Imports optuna (the ``cluster`` extra): only the Optuna sweeper imports this module.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from optuna.distributions import (
    CategoricalDistribution,
    DiscreteUniformDistribution,
    IntLogUniformDistribution,
    IntUniformDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler, TPESampler

log = logging.getLogger(__name__)

__all__ = ["ResumableTPESampler", "repeats_a_trial"]


def _size(dist) -> float:
    """How many values a distribution has (inf for a continuous one)."""
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    if isinstance(dist, IntUniformDistribution):
        return (dist.high - dist.low) // dist.step + 1
    if isinstance(dist, IntLogUniformDistribution):
        return dist.high - dist.low + 1
    if isinstance(dist, DiscreteUniformDistribution):
        return round((dist.high - dist.low) / dist.q) + 1
    return math.inf


def repeats_a_trial(study, trial, new: dict[str, Any]) -> bool:
    """True when ``trial``'s parameters with ``new`` added can only end as a parameter set that
    another trial of the study already has: they equal its set, or every completion of them
    (over the other trials' remaining parameters) was already tried."""
    params = {**trial.params, **new}
    matching = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number != trial.number and all(k in t.params and t.params[k] == v for k, v in params.items())
    ]
    if not matching:
        return False
    rest = sorted(k for k in matching[0].params if k not in params)
    size = math.prod(_size(matching[0].distributions[k]) for k in rest)
    return len({tuple(t.params.get(k) for k in rest) for t in matching}) >= size


class ResumableTPESampler(BaseSampler):
    """``TPESampler(**tpe_kwargs)`` seeded by the study's size, never repeating a parameter set."""

    def __init__(self, seed: int | None = None, max_redraws: int = 100, **tpe_kwargs: Any) -> None:
        self.seed = seed
        self.max_redraws = int(max_redraws)
        self.tpe_kwargs = tpe_kwargs
        self.offset: int | None = None  #: trials the study held when this session asked first
        self._tpe: TPESampler | None = None
        self._random: RandomSampler | None = None
        self._rng: np.random.RandomState | None = None

    def _session(self, trial) -> TPESampler:
        if self._tpe is None:
            self.offset = int(trial.number)
            seed = None if self.seed is None else int(self.seed) + self.offset
            self._tpe = TPESampler(seed=seed, **self.tpe_kwargs)
            self._random = RandomSampler(seed=None if seed is None else seed + 1)
            self._rng = np.random.RandomState(seed)
            if self.offset:
                log.info("resumed study (%d trials): sampler seed %s + %d", self.offset, self.seed, self.offset)
        return self._tpe

    def infer_relative_search_space(self, study, trial):
        return self._session(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        tpe = self._session(trial)
        params = tpe.sample_relative(study, trial, search_space)
        for _ in range(self.max_redraws):
            if not params or not repeats_a_trial(study, trial, params):
                break
            params = tpe.sample_relative(study, trial, search_space)
        return params

    def sample_independent(self, study, trial, param_name, param_distribution):
        value = self._session(trial).sample_independent(study, trial, param_name, param_distribution)
        if not repeats_a_trial(study, trial, {param_name: value}):
            return value
        if isinstance(param_distribution, CategoricalDistribution):
            fresh = [c for c in param_distribution.choices if not repeats_a_trial(study, trial, {param_name: c})]
            if fresh:
                return fresh[int(self._rng.randint(len(fresh)))]
        else:
            for _ in range(self.max_redraws):
                value = self._random.sample_independent(study, trial, param_name, param_distribution)
                if not repeats_a_trial(study, trial, {param_name: value}):
                    return value
        log.warning(
            "trial %d repeats the parameters of an earlier trial: no value of %s makes a new set",
            trial.number,
            param_name,
        )
        return value

    def after_trial(self, study, trial, state, values) -> None:
        if self._tpe is not None:
            self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        if self._tpe is not None and self._random is not None:  # set together by _session
            self._tpe.reseed_rng()
            self._random.reseed_rng()
            self._rng = np.random.RandomState()
