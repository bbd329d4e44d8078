"""Export a fine-tuned model in Hugging Face format:
``python -m bertlab.export ckpt_path=<file.ckpt> out=<dir> [overwrite=true]``.

``<dir>`` holds

* ``config.json`` + ``model.safetensors``: the encoder (``BertModel`` / ``AlbertModel``, float32)
  by ``save_pretrained``, over the run's own vocabulary: a trimmed vocabulary
  (``data.trim_vocab``, the checkpoint's ``vocab_keep_ids``) stays trimmed, so the embedding
  has exactly the rows the run trained and ``vocab.txt`` lists their tokens in order (no row
  is invented for the dropped tokens). ``AutoModel.from_pretrained(<dir>)`` loads it (its pooler,
  which bertlab never uses, starts random: HF says so), and so does bertlab
  (``encoder.pretrained=<dir>``, e.g. to fine-tune it further);
* ``tokenizer.json`` + ``tokenizer_config.json``: a fast tokenizer that
  ``AutoTokenizer.from_pretrained(<dir>)`` loads and that gives the ids bertlab's
  :class:`~bertlab.data.tokenization.CharTokenizer` gives (``[CLS]``, one token per
  non-whitespace character, ``[SEP]``; NFKC + lower-case lookup with its fallbacks): a
  standard BertTokenizer over the same vocab.txt does NOT (WordPiece joins Latin letters and
  runs of unknown characters, and full-width punctuation is not NFKC-folded: it disagrees on
  ~83% of the PKU test sentences). See :func:`build_char_tokenizer`. A run trained with
  ``data.tokenizer=wordpiece`` exports its WordPiece tokenizer instead
  (:meth:`~bertlab.data.tokenization.WordPieceTokenizer.hf_tokenizer`: BERT's, with the
  full-width fold bertlab applies first);
* ``vocab.txt``: the vocabulary, one token a line (bertlab's tokenizer reads it);
* ``bertlab_head.safetensors`` + ``bertlab_head.json``: every weight of the task beyond the
  encoder (the emission layer and CRF transitions of a tagger, a classifier, an MLM head), by
  its name in the task's ``state_dict``, and what rebuilds the task around the encoder (the
  task class and its hyperparameters: number of tags / labels, head config, ...);
* ``README.md``: a model card (task, data, the run's metrics from ``metrics.json`` beside the
  checkpoint's folder, the command from the run's ``.hydra/overrides.yaml``, the config).

The checkpoint is verified first (:func:`bertlab.runs.load_run`: CRC, finite weights, a
bertlab run). An encoder whose weights do not load into a plain HF model (the conditional
layer norms of the generation task) is refused in one line, as is an ``out`` that exists
and is not empty (unless ``overwrite=true``); ALBERT unshared into independent layers is a
plain ``AlbertModel`` (``num_hidden_groups = num_hidden_layers``) and exports. The folder
is written beside ``out`` under a temporary name and renamed into place only when complete.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import unicodedata
from typing import TYPE_CHECKING, Any, cast

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from bertlab.data.tokenization import CharTokenizer, Tokenizer, WordPieceTokenizer
from bertlab.nn.encoders import _model_classes
from bertlab.runs import load_run, read_checkpoint
from bertlab.utils.atomic import atomic_write_json, atomic_write_text, temp_path_for
from bertlab.utils.cli_checks import check_output_dir
from bertlab.utils.errors import CheckpointError, ConfigError
from bertlab.utils.hydra_utils import exit_on_user_error, precheck_overrides, repo_root

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)
CONFIG_DIR = os.path.join(repo_root(), "conf")
HEAD_WEIGHTS = "bertlab_head.safetensors"
HEAD_CONFIG = "bertlab_head.json"
#: hyperparameters that describe training, not the model
TRAINING_HPARAMS = ("optimizer", "scheduler", "encoder", "vocab_keep_ids")
#: the first private-use code point for stand-in characters (see build_char_tokenizer)
_STAND_IN_BASE = 0xF0000
MAX_STAND_INS = 4096


# --------------------------------------------------------------------------- tokenizer
def _regex_class(chars: list[str]) -> str:
    return "[" + "".join("\\" + c if c in "\\]^-[&" else c for c in sorted(chars)) + "]"


def _plain_fold(s: str) -> str:
    """What the HF pipeline's NFKC + Lowercase normalizers do to ``s`` (as Python does it)."""
    return unicodedata.normalize("NFKC", s).lower()


def build_char_tokenizer(tokenizer: CharTokenizer):
    """A ``tokenizers.Tokenizer`` giving exactly ``tokenizer.encode(text).ids`` for every text.

    Pipeline: normalizers (a few character-class ``Replace`` steps, then NFKC, then Lowercase)
    -> drop whitespace (``str.isspace``) and split into single characters -> a WordLevel lookup
    -> ``[CLS] $A [SEP]``. NFKC + lower-case is CharTokenizer's first choice; the characters
    for which it gives another result (NFKC expands them to several characters, or
    CharTokenizer falls back to the raw character, or the result is a multi-character vocab
    token such as ``...`` for ``…``) are found by checking every Unicode code point, and are
    mapped first: to an unknown stand-in (-> [UNK]) or to a private-use stand-in character
    (plane 15) that the WordLevel vocab holds in place of the target token's name (the
    decoder maps it back; ``convert_ids_to_tokens`` shows the stand-in for those few ids)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    tokenizer = CharTokenizer(tokenizer.vocab_file, keep_ids=tokenizer.keep_ids)  # its own cache
    unk = tokenizer.unk_id
    names = list(tokenizer.tokens)
    vocab = {tok: i for i, tok in enumerate(names)}
    # NFKC and Lowercase see the whole text, CharTokenizer one character: characters that can
    # compose with the one before them (combining marks, the second part of a canonical
    # composition, Hangul vowel/final jamo; also when NFKC makes one of them) and the capital
    # sigma (lower-cased by its context) are always replaced before NFKC
    second = {chr(cp) for cp in (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))}
    assigned = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    assigned = [c for c in assigned if unicodedata.category(c) not in ("Cn", "Co") or c in vocab]
    for c in assigned:
        d = unicodedata.decomposition(c)
        if d and not d.startswith("<") and len(d.split()) == 2:
            second.add(chr(int(d.split()[1], 16)))

    def context_sensitive(c: str) -> bool:
        first = unicodedata.normalize("NFKD", c)[:1]
        return first in second or unicodedata.combining(first) != 0 or "\u03a3" in unicodedata.normalize("NFKC", c)

    # the code points whose plain fold + lookup could differ from CharTokenizer's answer
    interesting: dict[str, tuple[str, int]] = {}
    forced: set[str] = set()
    spaces = []
    # unassigned and private-use code points (not in the vocab) are [UNK] either way: only
    # the stand-ins' own code points need a look
    stand_ins_room = [chr(cp) for cp in range(_STAND_IN_BASE, _STAND_IN_BASE + MAX_STAND_INS + 1)]
    for c in [*assigned, *stand_ins_room]:
        if c.isspace():
            spaces.append(c)
            continue
        want = tokenizer.char_id(c)
        folded = _plain_fold(c)
        sensitive = context_sensitive(c)
        if folded != c or vocab.get(c, unk) != want or sensitive or c in stand_ins_room:
            interesting[c] = (folded, want)
            if sensitive:
                forced.add(c)

    stand_in: dict[int, str] = {}  # token id -> its stand-in character
    unknown = chr(_STAND_IN_BASE)
    lookup: dict[str, int] = {}

    def plain(folded: str) -> list[int]:
        return [lookup.get(ch, unk) for ch in folded if not ch.isspace()]

    while True:
        lookup = {tok: i for i, tok in enumerate(names)}
        exceptions = {c: want for c, (folded, want) in interesting.items() if c in forced or plain(folded) != [want]}
        # a target whose name is not one stable character the plain path gives back gets a stand-in
        new = {
            i
            for i in exceptions.values()
            if i != unk
            and i not in stand_in
            and (len(names[i]) != 1 or names[i] in forced or plain(_plain_fold(names[i])) != [i])
        }
        if not new:
            break
        if len(stand_in) + len(new) > MAX_STAND_INS:
            raise CheckpointError(f"tokenizer export: more than {MAX_STAND_INS} vocab tokens need a stand-in")
        for i in sorted(new):
            stand_in[i] = chr(_STAND_IN_BASE + 1 + len(stand_in))
            names[i] = stand_in[i]
    # each exception is first replaced by a character the plain path sends to its id; the
    # order (names, then the unknown stand-in, then the token stand-ins) never maps a
    # replacement again
    replace = {c: unknown if want == unk else names[want] for c, want in exceptions.items()}
    groups: dict[str, list[str]] = {}
    for c, target in replace.items():
        groups.setdefault(target, []).append(c)
    for c, (folded, want) in interesting.items():  # the whole pipeline, emulated
        got = plain(_plain_fold(replace[c])) if c in replace else plain(folded)
        if got != [want] or (c in forced and c not in replace):
            raise RuntimeError(f"tokenizer export: U+{ord(c):04X} gives {got}, bertlab gives {want}")
    steps = [normalizers.Replace(Regex(_regex_class(cs)), target) for target, cs in sorted(groups.items())]
    tok = Tokenizer(WordLevel({name: i for i, name in enumerate(names)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([*steps, normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(_regex_class(spaces)), "removed"), pre_tokenizers.Split(Regex("."), "isolated")]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.cls_id), ("[SEP]", tokenizer.sep_id)],
    )
    tok.decoder = decoders.Sequence(
        [decoders.Replace(ch, tokenizer.tokens[i]) for i, ch in sorted(stand_in.items())] + [decoders.Fuse()]
    )
    return tok


@functools.lru_cache(maxsize=4)
def _tokenizer_json(vocab_file: str, mtime_ns: int, keep_ids: tuple[int, ...] | None) -> str:
    """build_char_tokenizer's JSON (the scan of every code point takes seconds: once a process)."""
    return build_char_tokenizer(
        CharTokenizer(vocab_file, keep_ids=None if keep_ids is None else list(keep_ids))
    ).to_str()


def write_tokenizer(out_dir: str, tokenizer: Tokenizer, max_length: int) -> None:
    """vocab.txt, tokenizer.json and tokenizer_config.json (see the module doc)."""
    atomic_write_text(os.path.join(out_dir, "vocab.txt"), "\n".join(tokenizer.tokens) + "\n")
    if isinstance(tokenizer, WordPieceTokenizer):
        text = tokenizer.hf_tokenizer().to_str()
        note = "BERT WordPiece (lower-cased), full-width ASCII folded first, as bertlab's WordPieceTokenizer"
    else:
        keep = None if tokenizer.keep_ids is None else tuple(tokenizer.keep_ids)
        text = _tokenizer_json(tokenizer.vocab_file, os.stat(tokenizer.vocab_file).st_mtime_ns, keep)
        note = "one token per non-whitespace character, as bertlab.data.tokenization.CharTokenizer"
    atomic_write_text(os.path.join(out_dir, "tokenizer.json"), text)
    specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]"}
    if "[MASK]" in tokenizer.vocab:
        specials["mask_token"] = "[MASK]"
    atomic_write_json(
        os.path.join(out_dir, "tokenizer_config.json"),
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": int(max_length),
            "padding_side": "right",
            **specials,
            "bertlab": note,
        },
    )


# --------------------------------------------------------------------------- model
def hf_encoder(model: torch.nn.Module, ckpt_path: str) -> PreTrainedModel:
    """A plain HF base model (no pooler) holding a copy of the task's encoder; CheckpointError
    when the encoder's weights do not load into one (a structure HF does not know)."""
    import copy

    encoder = getattr(model, "encoder", None)
    config = getattr(encoder, "config", None)
    if encoder is None or config is None or getattr(config, "model_type", None) not in ("bert", "albert"):
        raise CheckpointError(f"ckpt_path: {ckpt_path} has no BERT or ALBERT encoder to export")
    config = copy.deepcopy(config)
    _, base_cls, _, _, _ = _model_classes(config.model_type)
    config.architectures = [base_cls.__name__]
    plain = base_cls(config, add_pooling_layer=False)
    missing, unexpected = plain.load_state_dict(encoder.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        what = (
            f"{len(unexpected)} weights HF's {base_cls.__name__} does not have (e.g. {unexpected[0]})"
            if unexpected
            else ""
        )
        what = what or f"{len(missing)} of its weights missing (e.g. {missing[0]})"
        raise CheckpointError(
            f"ckpt_path: {ckpt_path}: its encoder is not a plain {base_cls.__name__} ({what}; "
            "e.g. conditional layer norms): not exportable in Hugging Face format"
        )
    return plain.float().eval()


def head_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of the task outside its encoder, by its state_dict name (own copies)."""
    return {
        k: v.detach().float().contiguous().clone() if v.is_floating_point() else v.detach().contiguous().clone()
        for k, v in model.state_dict().items()
        if not k.startswith("encoder.")
    }


def _run_dir(ckpt_path: str) -> str:
    folder = os.path.dirname(os.path.abspath(ckpt_path))
    return os.path.dirname(folder) if os.path.basename(folder) == "checkpoints" else folder


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _command(run_dir: str) -> str | None:
    path = os.path.join(run_dir, ".hydra", "overrides.yaml")
    if not os.path.isfile(path):
        return None
    overrides = OmegaConf.to_container(OmegaConf.load(path))
    return " ".join(["python -m bertlab.train", *(str(o) for o in overrides or [])])


def model_card(facts: dict[str, Any]) -> str:
    saved = facts["config"]
    metrics = facts.get("metrics") or {}
    lines = [
        f"# {saved.get('task_name', 'bertlab')}: a fine-tuned {facts['model_type'].upper()} exported by bertlab",
        "",
        f"- task: `{facts['task']}` ({', '.join(saved.get('tags') or []) or 'no tags'})",
        f"- checkpoint: `{facts['ckpt_path']}` (global step {facts['global_step']})",
        f"- trained by: `{facts['command'] or 'unknown (no .hydra/overrides.yaml beside the checkpoint)'}`",
        f"- data: `{json.dumps(saved.get('data', {}), ensure_ascii=False, default=str)}`",
        f"- encoder: {facts['model_type']}, {json.dumps(facts['architecture'])}, vocabulary {facts['vocab_size']} tokens"
        + (" (trimmed: `data.trim_vocab`)" if facts["trimmed"] else ""),
        "",
        "## Metrics (the run's metrics.json)",
        "",
    ]
    if metrics.get("test"):
        lines += ["| metric | test |", "| --- | --- |"]
        lines += [
            f"| {k} | {v:g} |" if float(v).is_integer() else f"| {k} | {v:.4f} |"
            for k, v in metrics["test"].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
    else:
        lines.append("none found beside the checkpoint")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModel, AutoTokenizer",
        "tok = AutoTokenizer.from_pretrained(DIR)  # one token per character, as bertlab",
        "enc = AutoModel.from_pretrained(DIR)      # the pooler is not part of it (random)",
        'hidden = enc(**tok(["文本"], return_tensors="pt")).last_hidden_state',
        "```",
        "",
        f"bertlab: `encoder.pretrained=DIR` (fine-tune it further). The task head (`{HEAD_WEIGHTS}`,"
        f" described in `{HEAD_CONFIG}`) holds the weights outside the encoder, by their names in the task.",
        "",
    ]
    return "\n".join(lines)


def export(cfg: DictConfig) -> dict[str, Any]:
    """Write the export folder (see the module doc); returns its facts."""
    out = cfg.get("out")
    if not out:
        raise ConfigError("out", "missing: pass out=<folder to write the model into>")
    out = os.path.abspath(os.path.expanduser(str(out)))
    check_output_dir(out, [cfg.ckpt_path], writes=["./"], key="out")
    if os.path.isdir(out) and os.listdir(out) and not cfg.get("overwrite", False):
        raise ConfigError("out", f"{out} exists and is not empty: pass overwrite=true to replace it")
    if not os.path.isdir(os.path.dirname(out)):
        raise ConfigError("out", f"{out}: the folder {os.path.dirname(out)} does not exist")
    model, datamodule, saved = load_run(str(cfg.ckpt_path))
    saved = cast(dict[str, Any], OmegaConf.to_container(saved, resolve=False))  # of a DictConfig: a dict
    encoder = hf_encoder(model, cfg.ckpt_path)
    tokenizer = datamodule.ensure_tokenizer()  # the run's vocab file and kept ids
    if len(tokenizer) != encoder.config.vocab_size:
        raise CheckpointError(
            f"ckpt_path: {cfg.ckpt_path}: {len(tokenizer)} vocab tokens but {encoder.config.vocab_size} embedding rows"
        )
    run_dir = _run_dir(cfg.ckpt_path)
    head = head_tensors(model)
    facts = {
        "ckpt_path": os.path.abspath(str(cfg.ckpt_path)),
        "task": saved["model"]["_target_"],
        "model_type": encoder.config.model_type,
        "global_step": read_checkpoint(str(cfg.ckpt_path)).get("global_step"),  # verified already: no 2nd CRC pass
        "command": _command(run_dir),
        "metrics": _read_json(os.path.join(run_dir, "metrics.json")),
        "config": saved,
        "vocab_size": len(tokenizer),
        "trimmed": model.hparams.get("vocab_keep_ids") is not None,
        "architecture": {
            k: getattr(encoder.config, k)
            for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "embedding_size")
            if hasattr(encoder.config, k)
        },
    }
    tmp = temp_path_for(out)
    try:
        os.makedirs(tmp)
        encoder.save_pretrained(tmp)
        write_tokenizer(tmp, tokenizer, encoder.config.max_position_embeddings)
        from safetensors.torch import save_file

        save_file(head, os.path.join(tmp, HEAD_WEIGHTS), metadata={"format": "pt"})
        atomic_write_json(
            os.path.join(tmp, HEAD_CONFIG),
            {
                "format": "bertlab-head/1",
                "task": facts["task"],
                "encoder": "this folder's config.json + model.safetensors: the task's `encoder` module",
                "weights": {
                    k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in head.items()
                },
                "hparams": {k: v for k, v in dict(model.hparams).items() if k not in TRAINING_HPARAMS},
                "rebuild": "hparams + encoder.pretrained=<this folder> + data.trim_vocab=none build the task "
                "(hydra.utils.get_class(task)(encoder=..., optimizer=..., **hparams)); then "
                "load_state_dict(bertlab_head.safetensors, strict=False) restores the head",
            },
            default=str,
        )
        atomic_write_text(os.path.join(tmp, "README.md"), model_card(facts))
        mask = os.umask(0)
        os.umask(mask)
        for name in os.listdir(tmp):  # safetensors writes 0600 files: readable as the folder is
            os.chmod(os.path.join(tmp, name), 0o666 & ~mask)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s to %s", cfg.ckpt_path, out)
    print(f"exported {cfg.ckpt_path} -> {out}", file=sys.stderr)
    return facts


def _replace_dir(tmp: str, out: str) -> None:
    """Rename the finished folder ``tmp`` to ``out`` (an existing ``out`` is moved aside first
    and removed after)."""
    old = None
    if os.path.lexists(out):
        old = temp_path_for(out)
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    export(cfg)


def cli() -> None:
    precheck_overrides(CONFIG_DIR, "export", sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
