"""Guards for how Lightning's DDP launching meets Hydra's multirun."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from bertlab.utils.errors import ConfigError

#: strategies whose Lightning launcher re-runs the script (``sys.argv``) for ranks > 0
RELAUNCHING = ("ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")


def check_ddp_launch(cfg: DictConfig, multirun: bool | None = None) -> None:
    """Stop with one clear line when a local Hydra multirun would use a DDP strategy that
    re-runs the script: Lightning re-launches ``python -m bertlab.train <argv>`` for rank 1,
    and with ``-m`` in argv that child starts a whole new sweep. Fine under SLURM (SLURM
    starts the processes, Lightning launches nothing) and in a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    trainer = cfg.get("trainer") or {}
    strategy = trainer.get("strategy")
    strategy = strategy if isinstance(strategy, str) else None
    devices = trainer.get("devices", 1)
    n = devices if isinstance(devices, int) else (len(devices) if isinstance(devices, (list, tuple)) else 2)
    n *= int(trainer.get("num_nodes", 1) or 1)
    if strategy not in RELAUNCHING or n <= 1:
        return
    if multirun is None:  # from Hydra's runtime config
        multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if not multirun:
        return
    if "SLURM_NTASKS" in os.environ or "LOCAL_RANK" in os.environ:
        return  # processes started by SLURM (or we are already a launched rank)
    raise ConfigError(
        "trainer.strategy",
        f"'{strategy}' with {n} processes inside a local multirun (-m): Lightning would re-run the "
        "command for each rank and start a new sweep. Submit the sweep to SLURM "
        "(hydra/launcher=slurm_ddp or slurm_ddp_cpu), or run each job as a single run",
    )


# ---------------------------------------------------------------------------------------
# Evaluation across processes: each rank evaluates its own share of the batches and the
# results are gathered/summed, so every rank ends up with the metrics of the whole set.


def rank_and_world() -> tuple[int, int]:
    """(global rank, world size) of the default process group; (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_objects(obj: object) -> list:
    """``obj`` of every rank, in rank order, on every rank (``all_gather_object``; a
    one-element list without a process group). Every rank must call it."""
    import torch.distributed as dist

    _, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out


def sum_across_ranks(values: list[float] | tuple[float, ...]) -> list[float]:
    """Element-wise sums of ``values`` (counts, sums of losses) over all ranks, as float64
    (exact for counts below 2**53). Every rank must call it with as many values."""
    return [sum(col) for col in zip(*gather_objects([float(v) for v in values]))]


def sum_dicts_across_ranks(values: dict) -> dict:
    """``{key: number}`` summed key-wise over all ranks (keys may differ between ranks), e.g.
    per-label NLL sums and token counts. Every rank must call it."""
    total: dict = {}
    for part in gather_objects(dict(values)):
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def merge_by_index(parts: list[dict]) -> dict:
    """One ``{sample index: prediction}`` from the ranks' dicts; an index that several ranks
    evaluated (a sampler that pads shards with duplicated samples) counts once."""
    merged: dict = {}
    for part in parts:
        for key, value in part.items():
            merged.setdefault(key, value)
    return merged
