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


def test_the_best_checkpoints_matrix_is_kept_apart(tmp_path):
    """best.csv follows the ModelCheckpoint's monitor and mode (a strict improvement replaces
    it), so the reported checkpoint's transitions are not confused with the last step's."""
    module = nn.Module()
    module.head = CRF(3)
    ckpt = SimpleNamespace(monitor="val/f1", mode="max")
    trainer = SimpleNamespace(
        global_step=0,
        is_global_zero=True,
        sanity_checking=False,
        datamodule=SimpleNamespace(tag_names=["O", "B-X", "I-X"]),
        loggers=[],
        checkpoint_callback=ckpt,
        callback_metrics={},
    )
    cb = TransitionHeatmap(str(tmp_path))
    mats = {}
    for step, f1 in [(10, 0.5), (20, 0.8), (30, 0.8), (40, 0.6)]:  # best at 20 (30 only ties)
        with torch.no_grad():
            module.head.transitions.add_(1.0)
        mats[step] = module.head.transitions.detach().clone()
        trainer.global_step = step
        trainer.callback_metrics["val/f1"] = torch.tensor(f1)
        cb.on_validation_epoch_end(trainer, module)
        cb.on_validation_end(trainer, module)
    _, best = _read(tmp_path / "best.csv")
    torch.testing.assert_close(best, mats[20], atol=1e-6, rtol=0)
    _, last = _read(tmp_path / "step0000040.csv")
    torch.testing.assert_close(last, mats[40], atol=1e-6, rtol=0)
    assert cb.best_step == 20 and trainer.callback_metrics["transitions/best_step"].item() == 20.0
    # mode min: the lowest wins
    ckpt.mode, cb.best_score, cb.best_step = "min", None, None
    for step, loss in [(50, 0.4), (60, 0.3), (70, 0.35)]:
        trainer.global_step = step
        trainer.callback_metrics["val/f1"] = torch.tensor(loss)
        cb.on_validation_end(trainer, module)
    assert cb.best_step == 60


def test_the_best_matrix_survives_a_resume(tmp_path):
    """The best step and score are checkpoint state: after a resume a worse validation does not
    replace best.csv (was: the first validation after a resume counted as the best)."""
    from types import SimpleNamespace

    import torch

    from bertlab.callbacks.transitions import TransitionHeatmap

    def trainer(step, f1):
        return SimpleNamespace(
            sanity_checking=False,
            is_global_zero=True,
            global_step=step,
            checkpoint_callback=SimpleNamespace(monitor="val/f1", mode="max"),
            callback_metrics={"val/f1": torch.tensor(f1)},
            datamodule=SimpleNamespace(tag_names=["s", "b"]),
        )

    module = SimpleNamespace(head=SimpleNamespace(transitions=torch.eye(2)))
    first = TransitionHeatmap(str(tmp_path))
    first.on_validation_end(trainer(2, 0.5), module)
    assert first.best_step == 2
    resumed = TransitionHeatmap(str(tmp_path))
    resumed.load_state_dict(first.state_dict())
    module.head.transitions = torch.zeros(2, 2)
    later = trainer(6, 0.3)
    resumed.on_validation_end(later, module)
    assert resumed.best_step == 2 and "transitions/best_step" not in later.callback_metrics
    assert "1.000000" in (tmp_path / "best.csv").read_text()  # still the step-2 matrix
