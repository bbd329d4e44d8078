"""Process helpers shared by the run folder's lock and status, and by the tools that start
bertlab commands as child processes (``bertlab.gpu_check``, ``bertlab.reproduce``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["child_env", "pid_alive"]

#: the folder the running ``bertlab`` package is imported from (``<checkout>/src``)
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_env() -> dict[str, str]:
    """The environment of a child ``python -m bertlab.<tool>``: this one, with this package's
    folder first on ``PYTHONPATH`` (the child runs the code that started it) and, unless set,
    ``HF_HUB_OFFLINE=1`` and ``WANDB_MODE=offline``."""
    path = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
    }
