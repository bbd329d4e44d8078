"""Encoder factory: HF BERT-family models built fresh or loaded from a checkpoint.

``build_encoder(cfg)`` returns ``(encoder, mlm_head or None)``. ``encoder`` is the HF base
model (``BertModel``, ``AlbertModel``, ...) whose ``last_hidden_state`` the tasks use; the
MLM head (``BertOnlyMLMHead`` / ``AlbertMLMHead``) is returned when asked for, with its
decoder tied to the encoder's word embeddings as in the HF model.

The same code path serves (a) a fresh model from a config (the shipped bert-base-chinese
config with width/depth overrides; the offline default) and (b) a real checkpoint by local
directory or hub name (``bert-base-chinese``, ``hfl/chinese-roberta-wwm-ext``,
``voidful/albert_chinese_tiny``) through ``from_pretrained`` (offline unless HF_HUB_OFFLINE=0).

A checkpoint's own ``config.json`` decides its architecture: ``model_type`` ``bert``
(bert-base-chinese, chinese-roberta-wwm-ext, the small BERT pretrained here) or ``albert``
(albert_chinese_tiny with its BertTokenizer vocab.txt, the small ALBERT pretrained here),
whatever ``encoder.model_type`` says. Weights are always loaded in float32 (the shipped
checkpoints are stored in fp16). Anything else is one :class:`CheckpointError` naming the
path and the problem: a missing path, no config.json, another model type, a vocab.txt whose
size differs from the embedding, encoder weights missing from the weights file.

Depth: ``num_layers`` is the depth of a FRESH model, an architecture key like
``hidden_size``: a loaded checkpoint ignores it and keeps ALL its layers unless
``keep_layers: K`` asks for its first K (logged at WARNING: "keeping K of N layers"; the
layer-1 ablation of the CRF post does this on purpose). A config without a ``keep_layers``
key at all (a run from before the key existed, whose ``num_layers`` also cut loaded models)
is read the old way: its ``num_layers`` keeps the first K layers of the checkpoint.

Every load logs (INFO, so in the run's log file) what was loaded: the path or hub name, the
model type, layers kept / total, hidden size, heads, vocabulary size before and after
trimming, and one line counting missing / unexpected weights. transformers' own coloured
"LOAD REPORT" table is dropped (bertlab.utils.noise), this summary replaces it.

A fresh ``model_type: albert`` is ALBERT proper: factorised embedding (``embedding_size``,
128 by default) and ONE transformer block shared by all ``num_layers`` layers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from torch import nn

from bertlab.utils.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

# Architecture keys that configure a FRESH model; ignored when loading a checkpoint.
FRESH_KEYS = (
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "embedding_size",
    "hidden_act",
)
DROPOUT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob")


def _model_classes(model_type: str):
    import transformers as tf

    table = {
        "bert": (tf.BertConfig, tf.BertModel, tf.BertForMaskedLM, "bert", "cls"),
        "albert": (tf.AlbertConfig, tf.AlbertModel, tf.AlbertForMaskedLM, "albert", "predictions"),
        "roberta": (tf.BertConfig, tf.BertModel, tf.BertForMaskedLM, "bert", "cls"),  # Chinese RoBERTa ships as BERT
    }
    if model_type not in table:
        raise ConfigError("encoder.model_type", f"unknown model type {model_type!r}; choose one of {sorted(table)}")
    return table[model_type]


def resolve_vocab_file(cfg: Mapping[str, Any]) -> str:
    """The vocab of the encoder: the checkpoint's vocab.txt when it has one, else cfg.vocab_file."""
    pretrained = cfg.get("pretrained")
    if pretrained and os.path.isdir(str(pretrained)):
        cand = os.path.join(str(pretrained), "vocab.txt")
        if os.path.isfile(cand):
            return cand
        log.warning(
            "%s has no vocab.txt: using encoder.vocab_file=%s, check that it is the checkpoint's vocab",
            pretrained,
            cfg.get("vocab_file"),
        )
    vocab = cfg.get("vocab_file")
    if not vocab:
        raise ConfigError(
            "encoder.vocab_file",
            "no vocab: set encoder.vocab_file or point encoder.pretrained at a directory with vocab.txt",
        )
    return str(vocab)


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and not _is_hub_id(name) or os.path.exists(name)


def _is_hub_id(name: str) -> bool:
    # hub ids are "name" or "org/name" with no further path components
    parts = name.split("/")
    return len(parts) <= 2 and all(parts) and not name.startswith((".", "/", "~"))


def keep_layers_setting(cfg: Mapping[str, Any]) -> tuple[int | None, str]:
    """(how many layers of a LOADED checkpoint to keep, None = all; the key that says so).

    ``encoder.keep_layers``; a config without that key (written before it existed) keeps the
    old meaning of ``encoder.num_layers`` for loaded models."""
    if "keep_layers" in cfg:
        value = cfg.get("keep_layers")
        return (None if value is None else int(value)), "encoder.keep_layers"
    value = cfg.get("num_layers")
    return (None if value is None else int(value)), "encoder.num_layers"


def _truncate_layers(model: PreTrainedModel, num_layers: int | None, model_type: str, key: str, name: str) -> None:
    """Keep the first ``num_layers`` layers (None: all); fewer than the checkpoint has is a WARNING."""
    if num_layers is None:
        return
    total = model.config.num_hidden_layers
    if not 1 <= num_layers <= total:
        raise ConfigError(key, f"must be in [1, {total}] for {name} ({total} layers), got {num_layers}")
    if num_layers < total:
        log.warning("%s=%d: keeping %d of %d layers of %s", key, num_layers, num_layers, total, name)
    if model_type == "albert":
        # one shared block applied num_hidden_layers times: applying it fewer times is "the first K layers"
        model.config.num_hidden_layers = num_layers
        return
    encoder = model.get_submodule("encoder")
    encoder.layer = nn.ModuleList(list(cast(nn.ModuleList, encoder.layer))[:num_layers])
    model.config.num_hidden_layers = num_layers


def build_config(cfg: Mapping[str, Any], vocab_size: int):
    """A fresh HF config: cfg.config_file (if any) overridden by the architecture keys in cfg."""
    config_cls = _model_classes(cfg.get("model_type", "bert"))[0]
    config_file = cfg.get("config_file")
    if config_file:
        if not os.path.isfile(str(config_file)):
            raise ConfigError("encoder.config_file", f"no such file: {config_file}")
        import json

        with open(str(config_file), encoding="utf-8") as f:
            raw = json.load(f)
        # the shipped file is BERT's: for another model type keep only the shared keys
        # (vocab/hidden sizes, dropouts, activation, ...), never its model_type
        raw.pop("model_type", None)
        raw.pop("architectures", None)
        config = config_cls(**raw)
    else:
        config = config_cls()
    for key in FRESH_KEYS + DROPOUT_KEYS:
        if cfg.get(key) is not None:
            setattr(config, key, cfg[key])
    if cfg.get("num_layers") is not None:  # a fresh model simply has K layers
        config.num_hidden_layers = int(cfg["num_layers"])
    config.vocab_size = vocab_size
    return config


def slice_vocab(model: PreTrainedModel, keep_ids: list[int]) -> None:
    """Keep only the embedding rows ``keep_ids`` (in that order) of an HF model, and the
    matching rows of its MLM output layer (weight tied or not, and bias)."""
    import torch

    idx = torch.as_tensor(keep_ids, dtype=torch.long)
    old_in = cast(nn.Embedding, model.get_input_embeddings())  # HF declares nn.Module
    new_in = nn.Embedding(len(keep_ids), old_in.embedding_dim, padding_idx=None)
    new_in.weight.data = old_in.weight.data[idx].clone()
    model.set_input_embeddings(new_in)
    out = cast("nn.Linear | None", model.get_output_embeddings())  # None: no MLM head
    if out is not None:
        if out.weight is old_in.weight or out.weight.data_ptr() == old_in.weight.data_ptr():
            out.weight = new_in.weight
        else:
            out.weight = nn.Parameter(out.weight.data[idx].clone())
        out.out_features = len(keep_ids)
        if getattr(out, "bias", None) is not None:
            out.bias = nn.Parameter(out.bias.data[idx].clone())
        for mod in model.modules():  # HF heads keep a second reference to the decoder bias
            if hasattr(mod, "decoder") and hasattr(mod, "bias") and mod.decoder is out:
                mod.bias = out.bias
    model.config.vocab_size = len(keep_ids)


def _count_lines(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for _ in f)


def offline_message(name: str) -> str:
    """The one line for a hub name that is not in the local cache while offline."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return (
        f"encoder.pretrained={name!r} is a hub name and this run is offline (HF_HUB_OFFLINE=1, the default) "
        f"but it is not in the Hugging Face cache ({HF_HUB_CACHE}): run once with HF_HUB_OFFLINE=0 to download "
        f"it, or `huggingface-cli download {name}`, or pass a local directory (config.json, weights, vocab.txt)"
    )


def checkpoint_model_type(name: str, offline: bool = True, requested: str | None = None) -> str:
    """The architecture (``bert`` or ``albert``) of a checkpoint, read from its config.json,
    after checking that its vocab.txt (when it ships one) matches its embedding size.

    ``name`` is a local directory or a hub name (looked up in the local cache when offline).
    Raises one :class:`CheckpointError` naming ``name`` and the problem.
    """
    path = os.path.expanduser(name)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise CheckpointError(
            f"encoder.pretrained={name!r} could not be loaded: no config.json in that directory "
            "(not a Hugging Face BERT/ALBERT checkpoint)"
        )
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path, local_files_only=offline)
    except (OSError, ValueError, KeyError) as err:
        if offline and not os.path.isdir(path):
            raise CheckpointError(offline_message(name)) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"encoder.pretrained={name!r} could not be loaded: {first}") from err
    found = getattr(config, "model_type", None)
    if found not in ("bert", "albert"):
        raise CheckpointError(
            f"encoder.pretrained={name!r} could not be loaded: its config.json says model_type "
            f"{found!r}, not a BERT or ALBERT checkpoint"
        )
    if requested and requested != found and not (requested == "roberta" and found == "bert"):
        log.warning("encoder.model_type=%s but %s is a %s checkpoint: loading it as %s", requested, name, found, found)
    vocab = os.path.join(path, "vocab.txt")
    if os.path.isfile(vocab):
        n = _count_lines(vocab)
        if n != config.vocab_size:
            raise CheckpointError(
                f"encoder.pretrained={name!r} could not be loaded: its vocab.txt has {n} tokens "
                f"but its embedding has {config.vocab_size} rows (vocab_size in config.json)"
            )
    return found


def _check_loading_info(name: str, info: Mapping[str, Any], base_attr: str | None) -> None:
    """Encoder weights missing from the file = the wrong kind of checkpoint: an error. A missing
    MLM head (a checkpoint saved without one) is only a warning: the head starts random."""
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids") and ".pooler." not in f".{k}"]
    if base_attr is None:
        encoder_missing, head_missing = missing, []
    else:
        encoder_missing = [k for k in missing if k.startswith(base_attr + ".")]
        head_missing = [k for k in missing if not k.startswith(base_attr + ".")]
    if encoder_missing:
        raise CheckpointError(
            f"encoder.pretrained={name!r} could not be loaded: {len(encoder_missing)} encoder "
            f"weights are missing from its weights file (e.g. {encoder_missing[0]})"
        )
    if head_missing:
        log.warning(
            "%s has no MLM head weights (%s, ...): the MLM head starts from random values", name, head_missing[0]
        )
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        raise CheckpointError(
            f"encoder.pretrained={name!r} could not be loaded: weights of the wrong shape ({mismatched[0]})"
        )


#: weight-name prefixes of the pretraining / task heads of HF BERT-family checkpoints
HEAD_PREFIXES = ("cls.", "predictions.", "sop_classifier.", "seq_relationship.", "classifier.", "qa_outputs.")
_KIND_NOTES = {
    ("unexpected", "pooler"): "the [CLS] pooler, which bertlab does not use: expected",
    ("unexpected", "head"): "pretraining heads this task does not use: expected",
    ("unexpected", "encoder"): "not used: NOT expected",
    ("missing", "head"): "the MLM head starts from random values",
    ("missing", "pooler"): "the pooler is not used",
    ("missing", "encoder"): "NOT expected",
}


def _key_kind(key: str) -> str:
    """What one weight name of a checkpoint is: "pooler", "head" or "encoder"."""
    if ".pooler." in f".{key}":
        return "pooler"
    return "head" if key.startswith(HEAD_PREFIXES) else "encoder"


def _count_kinds(which: str, keys: list[str]) -> str:
    """``"5 head (pretraining heads this task does not use: expected)"``-style counts."""
    kinds: dict[str, int] = {}
    for k in keys:
        kinds[_key_kind(k)] = kinds.get(_key_kind(k), 0) + 1
    return "; ".join(f"{n} {kind}: {_KIND_NOTES[which, kind]}" for kind, n in sorted(kinds.items()))


def log_load_summary(
    name: str,
    model_type: str,
    config: Any,
    layers_total: int,
    vocab_before: int,
    info: Mapping[str, Any],
) -> None:
    """The run log's record of a loaded checkpoint (INFO): what was loaded and how much of it."""
    where = "local directory" if os.path.isdir(os.path.expanduser(name)) else "hub name"
    vocab_after = int(config.vocab_size)
    vocab = f"{vocab_before}" + (
        f" -> {vocab_after} after trimming" if vocab_after != vocab_before else " (not trimmed)"
    )
    log.info(
        "encoder.pretrained=%s (%s): model type %s, %d of %d layers kept, hidden size %d, %d attention heads, "
        "vocabulary %s",
        name,
        where,
        model_type,
        int(config.num_hidden_layers),
        layers_total,
        int(config.hidden_size),
        int(config.num_attention_heads),
        vocab,
    )
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    unexpected = [k for k in info.get("unexpected_keys", ()) if not k.endswith("position_ids")]
    log.info(
        "encoder.pretrained=%s weights: %d missing%s, %d unexpected%s",
        name,
        len(missing),
        f" ({_count_kinds('missing', missing)})" if missing else "",
        len(unexpected),
        f" ({_count_kinds('unexpected', unexpected)})" if unexpected else "",
    )


def _from_pretrained(cls: Any, path: str, offline: bool, **kwargs: Any):
    """``cls.from_pretrained`` in float32 with its loading info, without transformers'
    progress bar (the summary of :func:`log_load_summary` says what was loaded)."""
    import torch
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return cls.from_pretrained(
            path, local_files_only=offline, dtype=torch.float32, output_loading_info=True, **kwargs
        )
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def build_encoder(
    cfg: Mapping[str, Any],
    vocab_size: int | None = None,
    with_mlm_head: bool = False,
    keep_ids: list[int] | None = None,
) -> tuple[PreTrainedModel, nn.Module | None]:
    """Build or load an encoder. Returns ``(encoder, mlm_head or None)``.

    cfg keys: model_type (bert|albert|roberta), pretrained (None | local dir | hub name),
    vocab_file, config_file, num_layers (a fresh model's depth), keep_layers (a loaded
    model: keep its first K layers; None = all), the FRESH_KEYS, dropouts, albert_unshared
    (ALBERT: N independent layers initialised from the shared block).
    ``keep_ids``: a trimmed vocab (see bertlab.data.vocab): a fresh model gets that many
    rows; a loaded one keeps exactly those rows of its embedding and MLM head.
    """
    if keep_ids is not None:
        vocab_size = len(keep_ids)
    model_type = cfg.get("model_type", "bert")
    _, base_cls, mlm_cls, base_attr, head_attr = _model_classes(model_type)
    pretrained = cfg.get("pretrained")

    if not pretrained:
        if vocab_size is None:  # the full vocab file
            from bertlab.data.tokenization import CharTokenizer

            vocab_size = len(CharTokenizer(resolve_vocab_file(cfg)))
        config = build_config(cfg, vocab_size)
        if with_mlm_head:
            full = mlm_cls(config)
            return _finish(getattr(full, base_attr), getattr(full, head_attr), cfg)
        return _finish(base_cls(config, add_pooling_layer=False), None, cfg)

    name = str(pretrained)
    path = os.path.expanduser(name)
    if _looks_local(name) and not os.path.isdir(path):
        raise CheckpointError(f"encoder.pretrained: no such directory: {name}")
    offline = os.environ.get("HF_HUB_OFFLINE", "1") not in ("0", "false", "False")
    model_type = checkpoint_model_type(name, offline, requested=model_type)
    _, base_cls, mlm_cls, base_attr, head_attr = _model_classes(model_type)
    overrides = {k: cfg[k] for k in DROPOUT_KEYS if cfg.get(k) is not None}
    try:
        cls = mlm_cls if with_mlm_head else base_cls
        kwargs = {} if with_mlm_head else {"add_pooling_layer": False}
        full, info = _from_pretrained(cls, path, offline, **kwargs, **overrides)
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = " (offline: HF_HUB_OFFLINE=1; download it elsewhere and pass its directory)" if offline else ""
        raise CheckpointError(
            f"encoder.pretrained={name!r} could not be loaded as a {model_type} model{hint}: {first}"
        ) from err
    _check_loading_info(name, info, base_attr if with_mlm_head else None)
    vocab_before = int(full.config.vocab_size)
    if keep_ids is not None:
        slice_vocab(full, keep_ids)
    if with_mlm_head:
        encoder, head = getattr(full, base_attr), getattr(full, head_attr)
    else:
        encoder, head = full, None
    layers_total = int(encoder.config.num_hidden_layers)
    keep, key = keep_layers_setting(cfg)
    fresh_depth = cfg.get("num_layers")
    if key == "encoder.keep_layers" and fresh_depth is not None and int(fresh_depth) != layers_total:
        log.info(
            "encoder.num_layers=%s is the depth of a fresh encoder: not applied to %s (to keep its first K "
            "layers: encoder.keep_layers=K)",
            fresh_depth,
            name,
        )
    _truncate_layers(encoder, keep, model_type, key, name)
    if vocab_size is not None and vocab_size != encoder.config.vocab_size:
        raise CheckpointError(
            f"encoder.pretrained={name!r} has vocab size {encoder.config.vocab_size} but the tokenizer has {vocab_size}"
        )
    log_load_summary(name, model_type, encoder.config, layers_total, vocab_before, info)
    return _finish(encoder, head, cfg)


def _finish(
    encoder: PreTrainedModel, head: nn.Module | None, cfg: Mapping[str, Any]
) -> tuple[PreTrainedModel, nn.Module | None]:
    """Last steps shared by fresh and loaded encoders: ALBERT unsharing
    (``encoder.albert_unshared``: one independent copy of the shared block per layer) and
    train mode (``from_pretrained`` returns eval-mode modules, which would keep dropout off
    while fitting: Lightning keeps the modes it finds)."""
    if cfg.get("albert_unshared"):
        from bertlab.nn.albert import unshare_albert

        unshare_albert(encoder)
    encoder.train()
    if head is not None:
        head.train()
    return encoder, head
