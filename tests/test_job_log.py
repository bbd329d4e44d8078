"""The job log is written only once a run owns its folder (issue 27 row 27f): a refused start
writes nothing into an existing folder and leaves no new one behind; the records of a start
that goes on are kept (held, then written in order)."""

from __future__ import annotations

import logging

import pytest

from bertlab.utils.job_log import DeferredFileHandler, no_folder_on_refusal, open_job_log


@pytest.fixture
def handler(tmp_path):
    h = DeferredFileHandler(str(tmp_path / "run" / "job.log"))
    h.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(h)
    yield h
    root.removeHandler(h)
    h.close()


def test_nothing_is_written_before_the_log_opens_then_everything_in_order(tmp_path, handler):
    (tmp_path / "run").mkdir()
    log = logging.getLogger("bertlab.test_job_log")
    log.warning("read 3 files")
    log.warning("repaired 2 lines")
    assert not (tmp_path / "run" / "job.log").exists()
    open_job_log()
    log.warning("training")
    handler.flush()
    assert (tmp_path / "run" / "job.log").read_text().splitlines() == [
        "WARNING read 3 files",
        "WARNING repaired 2 lines",
        "WARNING training",
    ]


def test_a_refused_start_leaves_no_new_folder_and_keeps_an_old_one(tmp_path):
    new = tmp_path / "new"
    new.mkdir()  # as Hydra makes it
    with pytest.raises(ValueError), no_folder_on_refusal(str(new)):
        raise ValueError("refused")
    assert not new.exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "status.json").write_text("{}")
    with pytest.raises(ValueError), no_folder_on_refusal(str(old)):
        raise ValueError("refused")
    assert (old / "status.json").exists()


def test_a_folder_filled_meanwhile_is_kept(tmp_path):
    """Two starts on one new folder: the other one's lock is in it, so the refused one keeps it."""
    new = tmp_path / "new"
    new.mkdir()
    with pytest.raises(ValueError), no_folder_on_refusal(str(new)):
        (new / "run.lock").write_text("{}")
        raise ValueError("refused")
    assert (new / "run.lock").exists()
