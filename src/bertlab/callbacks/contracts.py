"""What a callback may declare to ``bertlab.train`` (which knows no callback class by name):

* :class:`NeedsRunConfig`: ``set_run_config(cfg)`` is called with the run's composed config
  before fitting (:class:`bertlab.callbacks.run_config.RunConfigInCheckpoint` stores it in
  every checkpoint);
* :class:`ReportsRunMetrics`: ``run_metrics()`` is merged into metrics.json at the end of the
  run (:class:`bertlab.callbacks.throughput.TokenThroughput`: tokens/s, padding, epoch seconds,
  validation clock; :class:`bertlab.callbacks.nonfinite_loss.NonFiniteLossGuard`: the skipped
  steps).

Every callback of a run is declared in conf/callbacks/ (``callbacks=none`` keeps what every run
needs: the run config in checkpoints, exact resumes, the NaN/inf loss guard).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class NeedsRunConfig(Protocol):
    def set_run_config(self, cfg: Any) -> None:
        """Receive the run's composed config (an OmegaConf DictConfig) before fitting."""


@runtime_checkable
class ReportsRunMetrics(Protocol):
    def run_metrics(self) -> dict[str, Any]:
        """Keys and JSON-ready values for the run's metrics.json (written at the end of the run)."""
