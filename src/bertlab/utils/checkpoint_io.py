"""A Lightning CheckpointIO that writes checkpoints atomically on local disk.

Lightning's default (``TorchCheckpointIO`` via ``lightning_fabric``'s ``_atomic_save``)
stages the bytes in the *system* temp folder and ``shutil.move``s them, which is a copy
(so a kill mid-copy truncates the target) whenever /tmp is another file system, and never
fsyncs. Here the serialized checkpoint goes to a hidden temporary file next to the target,
is fsync'ed and renamed over it (:func:`bertlab.utils.atomic.atomic_write`), so
``last.ckpt`` is always either the previous complete checkpoint or the new complete one.
Remote (fsspec URL) paths fall back to Lightning's behaviour.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from bertlab.utils.atomic import atomic_write

log = logging.getLogger(__name__)


def _is_local(path: Any) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    def __init__(self, fsync: bool = True):
        super().__init__()
        self.fsync = fsync

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = str(path)
        if path.startswith("file://"):
            path = path[len("file://") :]
        buf = io.BytesIO()
        torch.save(checkpoint, buf)  # serialize fully before touching the disk
        log.debug("saving checkpoint atomically: %s", path)
        atomic_write(path, lambda fh: fh.write(buf.getbuffer()), fsync=self.fsync)
