"""Start-up noise that says nothing about a bertlab run, silenced once at import of bertlab.

* ``isinstance(treespec, LeafSpec) is deprecated`` (a FutureWarning, printed at every fit and
  test): torch >= 2.9 deprecates ``torch.utils._pytree.LeafSpec``, and Lightning's own
  ``pytorch_lightning/utilities/_pytree.py`` still builds one when it flattens a batch. Nothing
  in bertlab uses LeafSpec; the warning goes away with a Lightning release that follows torch.
* ``💡 Tip: ... try installing litlogger ...`` (an INFO line at every Trainer construction
  without a LitLogger): an advertisement for Lightning's cloud logger. bertlab logs to CSV /
  TensorBoard / W&B (``logger=...``) and runs offline.

Only these two exact messages are dropped; every other warning and log line is kept.
"""

from __future__ import annotations

import logging
import warnings

LEAFSPEC_WARNING = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
LITLOGGER_TIP = "💡 Tip: For seamless cloud logging and experiment tracking"
#: the loggers Lightning's rank_zero_info writes to (pytorch_lightning and lightning_fabric)
LIGHTNING_RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LITLOGGER_TIP)


def silence_startup_noise() -> None:
    """Install the warning filter and the log filter (idempotent)."""
    warnings.filterwarnings("ignore", message=LEAFSPEC_WARNING, category=FutureWarning)
    for name in LIGHTNING_RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLitLoggerTip) for f in logger.filters):
            logger.addFilter(_DropLitLoggerTip())
