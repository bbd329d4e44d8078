"""ALBERT "unshared" (post 2): drop the cross-layer parameter sharing at fine-tune time.

An ALBERT checkpoint holds ONE transformer block (``num_hidden_groups == 1``) applied
``num_hidden_layers`` times. :func:`unshare_albert` turns it into ``num_hidden_layers``
independent blocks, each initialised as a copy of the block that layer used before
(group ``int(i / (L / G))`` in HF's own indexing, i.e. the single shared block for a
standard checkpoint). The factorised embedding (``embedding_size`` + the
``embedding_hidden_mapping_in`` dense) is kept as it is.

The result is a plain HF ALBERT with ``num_hidden_groups == num_hidden_layers``: its
outputs right after unsharing equal the shared model's, and it saves and loads with
``save_pretrained`` / ``from_pretrained`` like any other ALBERT checkpoint.
"""

from __future__ import annotations

from torch import nn

from bertlab.utils.errors import ConfigError

__all__ = ["albert_base", "is_unshared", "unshare_albert"]


def albert_base(model: nn.Module, key: str = "encoder.albert_unshared"):
    """The ``AlbertModel`` inside ``model`` (an AlbertModel, or a head model with ``.albert``)."""
    from transformers import AlbertModel

    if isinstance(model, AlbertModel):
        return model
    inner = getattr(model, "albert", None)
    if isinstance(inner, AlbertModel):
        return inner
    raise ConfigError(key, f"needs an ALBERT encoder (encoder.model_type=albert), got a {type(model).__name__}")


def is_unshared(model: nn.Module) -> bool:
    """True when every layer of the ALBERT in ``model`` has its own block."""
    cfg = albert_base(model).config
    return cfg.num_hidden_groups == cfg.num_hidden_layers


def unshare_albert(model: nn.Module, key: str = "encoder.albert_unshared") -> nn.Module:
    """Give every layer of the ALBERT in ``model`` its own copy of the block it used; in place.

    ``model``: an ``AlbertModel`` or a model holding one as ``.albert`` (``AlbertForMaskedLM``,
    ``AlbertForPreTraining``, ...). Returns ``model``. Idempotent: an already unshared model
    is returned unchanged. The new blocks live on the device/dtype of the old ones and keep
    the training/eval mode; they share the model's config object (so attention
    implementation switches still reach them).
    """
    from transformers.models.albert.modeling_albert import AlbertLayerGroup

    base = albert_base(model, key)
    config = base.config
    n_layers, n_groups = int(config.num_hidden_layers), int(config.num_hidden_groups)
    if n_groups == n_layers:
        return model
    transformer = base.encoder
    old_groups = transformer.albert_layer_groups
    if len(old_groups) < n_groups:
        raise ConfigError(key, f"the model has {len(old_groups)} layer groups but its config says {n_groups}")
    ref = next(old_groups.parameters())
    new_groups = []
    for i in range(n_layers):
        src = old_groups[int(i / (n_layers / n_groups))]  # HF's own layer -> group rule
        group = AlbertLayerGroup(config).to(device=ref.device, dtype=ref.dtype)
        group.load_state_dict(src.state_dict())
        group.train(src.training)
        for p_new, p_old in zip(group.parameters(), src.parameters()):
            p_new.requires_grad_(p_old.requires_grad)
        new_groups.append(group)
    transformer.albert_layer_groups = nn.ModuleList(new_groups)
    config.num_hidden_groups = n_layers
    outer = getattr(model, "config", None)
    if outer is not None and outer is not config:
        outer.num_hidden_groups = n_layers
    return model
