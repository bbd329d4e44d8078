"""TransitionHeatmap writes the initial matrix (step 0) and one per validation, CSV + PNG."""

import csv
from types import SimpleNamespace

import torch
from torch import nn

from bertlab.callbacks.transitions import TransitionHeatmap
from bertlab.nn.crf import CRF


def _read(path):
    rows = list(csv.reader(open(path, encoding="utf-8")))
    return rows[0][1:], torch.tensor([[float(x) for x in r[1:]] for r in rows[1:]])


def test_initial_and_validation_matrices(tmp_path):
    module = nn.Module()
    module.head = CRF(4)
    dm = SimpleNamespace(tag_names=["s", "b", "m", "e"])
    trainer = SimpleNamespace(global_step=0, is_global_zero=True, sanity_checking=False, datamodule=dm, loggers=[])
    cb = TransitionHeatmap(str(tmp_path))
    cb.on_train_start(trainer, module)
    init = module.head.transitions.detach().clone()
    with torch.no_grad():
        module.head.transitions.add_(1.0)
    trainer.global_step = 7
    cb.on_validation_epoch_end(trainer, module)
    names, m0 = _read(tmp_path / "step0000000.csv")
    assert names == ["s", "b", "m", "e"]
    torch.testing.assert_close(m0, init, atol=1e-6, rtol=0)
    _, m7 = _read(tmp_path / "step0000007.csv")
    torch.testing.assert_close(m7, init + 1, atol=1e-6, rtol=0)
    assert (tmp_path / "step0000000.png").is_file() and (tmp_path / "step0000007.png").is_file()
