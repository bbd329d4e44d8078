"""The two Lightning start-up messages are dropped, and nothing else (bertlab/utils/noise.py)."""

from __future__ import annotations

import logging
import warnings

import bertlab  # noqa: F401  (installs the filters)
from bertlab.utils.noise import LITLOGGER_TIP, silence_startup_noise


def test_leafspec_deprecation_is_silenced_other_future_warnings_are_not():
    from torch.utils._pytree import LeafSpec

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        silence_startup_noise()  # catch_warnings reset the filters: install them again
        LeafSpec()
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    messages = [str(w.message) for w in caught]
    assert not any("LeafSpec" in m for m in messages)
    assert "something else is deprecated" in messages


def test_litlogger_tip_is_dropped_other_info_lines_are_kept(caplog):
    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    silence_startup_noise()
    with caplog.at_level(logging.INFO):
        rank_zero_info(LITLOGGER_TIP + ", try installing [litlogger](...)")
        rank_zero_info("GPU available: False")
    assert "GPU available: False" in caplog.text
    assert "litlogger" not in caplog.text
