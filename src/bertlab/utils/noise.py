"""Start-up noise that says nothing about a bertlab run, silenced once at import of bertlab.

* ``isinstance(treespec, LeafSpec) is deprecated`` (a FutureWarning, printed at every fit and
  test): torch >= 2.9 deprecates ``torch.utils._pytree.LeafSpec``, and Lightning's own
  ``pytorch_lightning/utilities/_pytree.py`` still builds one when it flattens a batch. Nothing
  in bertlab uses LeafSpec; the warning goes away with a Lightning release that follows torch.
* ``💡 Tip: ... try installing litlogger ...`` (an INFO line at every Trainer construction
  without a LitLogger): an advertisement for Lightning's cloud logger. bertlab logs to CSV /
  TensorBoard / W&B (``logger=...``) and runs offline.
* ``BertModel LOAD REPORT from: <path>`` (a WARNING of ``transformers.modeling_utils`` at every
  ``from_pretrained`` whose weights file holds keys the model has not, or lacks some: a table
  with terminal colour codes written to stderr, never to the run's log; transformers 5,
  ``transformers/utils/loading_report.py:log_state_dict_report``). bertlab checks the same
  loading info itself (a missing encoder weight or a wrong shape is an error) and logs one
  line counting the missing / unexpected weights by kind (``bertlab.nn.encoders``).

Only these three exact messages are dropped; every other warning and log line is kept.
"""

from __future__ import annotations

import logging
import warnings

LEAFSPEC_WARNING = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
LITLOGGER_TIP = "💡 Tip: For seamless cloud logging and experiment tracking"
#: the loggers Lightning's rank_zero_info writes to (pytorch_lightning and lightning_fabric)
LIGHTNING_RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
#: transformers' table of unexpected / missing weights (its prelude: "<Model> LOAD REPORT from: <path>")
LOAD_REPORT = " LOAD REPORT"
TRANSFORMERS_LOADER_LOGGER = "transformers.modeling_utils"


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LITLOGGER_TIP)


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return LOAD_REPORT not in str(record.msg).split("\n", 1)[0]


def silence_startup_noise() -> None:
    """Install the warning filter and the log filters (idempotent)."""
    warnings.filterwarnings("ignore", message=LEAFSPEC_WARNING, category=FutureWarning)
    for name in LIGHTNING_RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLitLoggerTip) for f in logger.filters):
            logger.addFilter(_DropLitLoggerTip())
    loader = logging.getLogger(TRANSFORMERS_LOADER_LOGGER)
    if not any(isinstance(f, _DropLoadReport) for f in loader.filters):
        loader.addFilter(_DropLoadReport())
