"""Which mixed precision a machine supports.

* CPU: bf16 autocast pays off only with native bf16 instructions (AVX-512 BF16 or AMX,
  flags ``avx512_bf16`` / ``amx_bf16`` / ``amx_tile`` in ``/proc/cpuinfo``); elsewhere
  PyTorch emulates bf16 and ``32-true`` is faster.
* GPU: ``bf16-mixed`` where the GPU supports bf16 (Ampere and newer), else ``16-mixed``.

``conf/trainer/gpu.yaml`` sets ``precision: ${best_precision:gpu}`` (resolved on the machine
that trains). The main job's CPU default stays ``32-true`` (see docs/results.md: the measured
speed-up did not meet the bar for changing it); ``${best_precision:cpu}`` is there to opt in.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: /proc/cpuinfo flags of native CPU bf16 arithmetic
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The bf16 flags the first CPU lists (empty when unreadable, e.g. not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return [f for f in flags if f in BF16_FLAGS]
    return []


def cpu_supports_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    flags = cpu_bf16_flags(cpuinfo)
    return "avx512_bf16" in flags or "amx_bf16" in flags


def best_precision(accelerator: str = "gpu", cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The fastest safe Lightning precision for ``accelerator`` ("cpu" or "gpu") here."""
    if accelerator == "cpu":
        if cpu_supports_bf16(cpuinfo):
            choice = "bf16-mixed"
        else:
            choice = "32-true"
            log.info("precision: this CPU has no native bf16 (%s): using 32-true", "/".join(BF16_FLAGS))
        return choice
    import torch

    if not torch.cuda.is_available():
        log.info("precision: no CUDA device visible: using 32-true")
        return "32-true"
    choice = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    log.info("precision: %s on %s", choice, torch.cuda.get_device_name(0))
    return choice
