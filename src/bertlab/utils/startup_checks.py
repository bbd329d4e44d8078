"""Start-up checks across config keys: constraints knowable before anything is read or trained.

Called by :func:`bertlab.utils.hydra_utils.validate_config` (so by ``precheck_overrides``,
before Hydra creates a run folder, and again at the start of ``train(cfg)``). Each failure
is a :class:`ConfigError` naming the key: one line, exit status 2.

* positions: ``data.max_len`` (special tokens included) must fit the encoder's
  ``max_position_embeddings`` (of the pretrained checkpoint's config.json when
  ``encoder.pretrained`` is a local folder, else of ``encoder.*`` / ``encoder.config_file``);
* heads: a fresh encoder's ``hidden_size`` must be divisible by ``num_attention_heads``;
* vocabulary: a local pretrained checkpoint's vocab (its vocab.txt, else ``encoder.vocab_file``)
  must have as many tokens as its embedding (``vocab_size`` in its config.json).

:func:`check_overrides` (called by ``precheck_overrides`` with the command line's overrides)
refuses ``encoder.num_layers=K`` given for a LOADED encoder: ``num_layers`` is the depth of a
fresh one (a checkpoint keeps all its layers); the old spelling of "keep the first K layers"
now reads ``encoder.keep_layers=K``, and saying it the old way is one line naming the new key.
"""

from __future__ import annotations

import json
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bertlab.utils.errors import ConfigError

__all__ = ["check_consistency", "check_overrides", "encoder_geometry"]


def _get(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
    except Exception:  # noqa: BLE001  an interpolation that cannot be resolved here
        return None


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _count_lines(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return sum(1 for _ in fh)  # as bertlab.nn.encoders counts a vocab
    except (OSError, UnicodeDecodeError):
        return None


def encoder_geometry(cfg: DictConfig) -> tuple[dict[str, Any], str]:
    """(the encoder's architecture numbers, where they come from): a local pretrained folder's
    config.json, else the ``encoder.*`` keys over ``encoder.config_file``."""
    pretrained = _get(cfg, "encoder.pretrained")
    if pretrained and os.path.isdir(str(pretrained)):
        found = _read_json(os.path.join(str(pretrained), "config.json"))
        if found is not None:
            return found, f"encoder.pretrained={pretrained}"
    if pretrained:  # a hub name (offline: checked when it is loaded)
        return {}, "encoder.pretrained"
    base = {}
    config_file = _get(cfg, "encoder.config_file")
    if config_file and os.path.isfile(str(config_file)):
        base = _read_json(str(config_file)) or {}
    for key in ("hidden_size", "num_attention_heads", "max_position_embeddings"):
        value = _get(cfg, f"encoder.{key}")
        if value is not None:
            base[key] = value
    return base, "encoder"


def check_consistency(cfg: DictConfig) -> None:
    """Raise a ConfigError for a combination of keys no run can use (module docstring)."""
    if _get(cfg, "encoder") is None:
        return
    geo, source = encoder_geometry(cfg)
    max_len = _get(cfg, "data.max_len")
    positions = geo.get("max_position_embeddings")
    if isinstance(max_len, int) and isinstance(positions, int) and max_len > positions:
        where = "encoder.max_position_embeddings" if source == "encoder" else f"{source}'s config.json"
        raise ConfigError(
            "data.max_len",
            f"{max_len} tokens (special tokens [CLS]/[SEP] included) do not fit the encoder's "
            f"{positions} positions ({where}); use data.max_len <= {positions}",
        )
    if source == "encoder":
        hidden, heads = geo.get("hidden_size"), geo.get("num_attention_heads")
        if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 and hidden % heads:
            raise ConfigError(
                "encoder.hidden_size",
                f"{hidden} is not divisible by encoder.num_attention_heads={heads} "
                f"(each head gets hidden_size / heads dimensions)",
            )
    elif source.startswith("encoder.pretrained="):
        pretrained = str(_get(cfg, "encoder.pretrained"))
        vocab = os.path.join(pretrained, "vocab.txt")
        key = "encoder.pretrained"
        if not os.path.isfile(vocab):
            if str(_get(cfg, "encoder.trim_vocab") or "none") != "none":
                return  # the embedding is sliced to the trimmed vocab after loading
            vocab, key = str(_get(cfg, "encoder.vocab_file") or ""), "encoder.vocab_file"
        n, rows = (_count_lines(vocab) if vocab else None), geo.get("vocab_size")
        if n is not None and isinstance(rows, int) and n != rows:
            raise ConfigError(
                key,
                f"the vocab {vocab} has {n} tokens but the checkpoint {pretrained} has {rows} embedding rows "
                f"(vocab_size in its config.json): not this checkpoint's vocab",
            )


def check_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Raise a ConfigError for a command-line key that means something else than the user
    meant with this config: ``encoder.num_layers=K`` on a loaded encoder (null, or K equal to
    a local checkpoint's depth, change nothing and pass)."""
    pretrained = _get(cfg, "encoder.pretrained")
    if not pretrained:
        return
    depth = encoder_geometry(cfg)[0].get("num_hidden_layers")  # a local checkpoint's depth
    for ov in overrides:
        key, _, value = ov.partition("=")
        if key.lstrip("+~") != "encoder.num_layers" or value.strip() in ("null", "None", ""):
            continue
        if value.strip() == str(depth):  # all its layers: what a loaded encoder keeps anyway
            continue
        raise ConfigError(
            "encoder.num_layers",
            f"is the depth of a fresh encoder; encoder.pretrained={pretrained} is loaded with all its layers: "
            f"to keep its first {value} use encoder.keep_layers={value}",
        )
