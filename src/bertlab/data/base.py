"""The base of every DataModule: the tokenizer (``data.tokenizer``: ``char``, one token per
character, or ``wordpiece``, BERT's own), a vocabulary that may be trimmed, and the interface
``bertlab.train`` / ``evaluate`` / ``predict`` / ``runs`` call.

A DataModule reads, tokenises and batches; it never computes metrics (those live in
:mod:`bertlab.metrics`, called by the tasks). :class:`CharDataModule` holds:

* the vocabulary: :meth:`CharDataModule.build_tokenizer` trims the vocabulary to the
  tokens of the training texts as ``data.trim_vocab`` says (``none`` | ``simplified`` |
  ``corpus``, :func:`bertlab.data.vocab.trim_vocab`) unless ``keep_ids`` is already set (a
  run rebuilt from its checkpoint: :func:`bertlab.runs.load_run` sets the model's ids), and
  builds the tokenizer of ``data.tokenizer`` (:func:`~bertlab.data.tokenization.make_tokenizer`:
  :class:`~bertlab.data.tokenization.CharTokenizer` or
  :class:`~bertlab.data.tokenization.WordPieceTokenizer`);
* :meth:`CharDataModule.model_kwargs`: what the task must know about the data (always the
  kept vocabulary ids, ``vocab_keep_ids``; a subclass adds its own, e.g. ``num_tags``), read
  from data already set up: the caller runs ``setup("fit")`` first (``bertlab.train`` does);
* :meth:`CharDataModule.eval_data`: what the task's scoring reads about a split, as one typed
  object per task family (``TaggingEvalData``, ``ClassificationEvalData``, ``ReadingEvalData``,
  ``TriplesEvalData``, ``GenerationEvalData``; declared next to the family's DataModule), so a
  task never reads a DataModule's attributes directly;
* the prediction interface: :meth:`set_predict_texts` (raw inputs for
  ``predict_dataloader``), :meth:`decode` (a split's ``{sample index: prediction}`` -> one
  output per input), :meth:`format_prediction` (an input and its output -> a JSON-ready
  dict) and :meth:`save_outputs` (a split's outputs -> files). A DataModule that cannot
  predict from raw texts (MLM pretraining) keeps the defaults, which say so.

A subclass calls ``super().__init__()`` and ``self.save_hyperparameters(logger=False)`` in its
constructor; its hyperparameters must include ``vocab_file`` and ``trim_vocab``. It declares
the value rules of its keys in ``VALUE_RULES`` (:class:`bertlab.utils.value_rules.ValueRule`,
keys relative to ``data``; checked before a run starts): a subclass adds its own to the base's.
``tokenizer`` (``char`` | ``wordpiece``) is read where the task supports WordPiece; without it
the DataModule is char-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import pytorch_lightning as pl
from pytorch_lightning.utilities.parsing import AttributeDict

from bertlab.data.tokenization import TOKENIZER_MODES, Tokenizer, make_tokenizer
from bertlab.data.vocab import MODES
from bertlab.data.vocab import trim_vocab as trimmed_ids
from bertlab.utils.errors import ConfigError
from bertlab.utils.value_rules import ValueRule


class CharDataModule(pl.LightningDataModule):
    """See the module docstring."""

    #: the values the keys every DataModule may take can have (a missing key is not checked)
    VALUE_RULES: ClassVar[tuple[ValueRule, ...]] = (
        ValueRule("batch_size", "int", 1),
        ValueRule("eval_batch_size", "int", 1),
        ValueRule("max_len", "int", 3),
        ValueRule("num_workers", "int", 0),
        ValueRule("pool_batches", "int", 1),
        ValueRule("max_train_chars", "int", 1),
        ValueRule("max_eval_sentences", "int", 1),
        ValueRule("trim_vocab", "choice", choices=MODES),
        ValueRule("tokenizer", "choice", choices=TOKENIZER_MODES),
    )
    #: the constructor's arguments (``save_hyperparameters``), read as attributes
    hparams: AttributeDict

    def __init__(self) -> None:
        super().__init__()
        self.tokenizer: Tokenizer | None = None
        #: the vocabulary ids the model keeps (None: the whole vocabulary file)
        self.keep_ids: list[int] | None = None
        #: counts written to metrics.json (``data_stats``)
        self.stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ vocabulary
    @property
    def trims_vocab(self) -> bool:
        """Whether :meth:`build_tokenizer` still has to derive ``keep_ids`` from training texts."""
        return self.keep_ids is None and self.hparams.trim_vocab != "none"

    @property
    def tokenizer_mode(self) -> str:
        """``data.tokenizer``: ``char`` or ``wordpiece`` (a DataModule without the key: char)."""
        mode = self.hparams.get("tokenizer", "char")
        if mode not in TOKENIZER_MODES:
            raise ConfigError("data.tokenizer", f"unknown tokenizer {mode!r}; choose one of {list(TOKENIZER_MODES)}")
        return mode

    @property
    def wordpiece(self) -> bool:
        return self.tokenizer_mode == "wordpiece"

    def build_tokenizer(self, training_texts: Iterable[str] = ()) -> Tokenizer:
        """Trim the vocabulary to the tokens of ``training_texts`` (read only when it trims:
        pass a generator; whole texts, since WordPiece pieces span characters) unless
        ``keep_ids`` is set, then build ``self.tokenizer`` over the kept ids."""
        hp = self.hparams
        mode = self.tokenizer_mode
        if self.trims_vocab:
            full = make_tokenizer(mode, hp.vocab_file)
            used = full.training_ids(training_texts)
            self.keep_ids = trimmed_ids(full.tokens, hp.trim_vocab, used, wordpiece=mode == "wordpiece")
        self.tokenizer = make_tokenizer(mode, hp.vocab_file, keep_ids=self.keep_ids)
        return self.tokenizer

    def ensure_tokenizer(self) -> Tokenizer:
        """The tokenizer, built over ``keep_ids`` as they are (prediction without ``setup``)."""
        if self.tokenizer is None:
            self.tokenizer = make_tokenizer(self.tokenizer_mode, self.hparams.vocab_file, keep_ids=self.keep_ids)
        return self.tokenizer

    def model_kwargs(self) -> dict[str, Any]:
        """What the task must know about the data, once ``setup("fit")`` has read it (an error
        before: the kept vocabulary ids come from the training data)."""
        if self.tokenizer is None:
            raise RuntimeError(f"{type(self).__name__}.model_kwargs() before setup('fit'): read the data first")
        return {"vocab_keep_ids": self.keep_ids}

    def eval_data(self, split: str) -> object:
        """What scoring ``split`` reads (after ``setup``): the task family's typed object, e.g.
        :class:`bertlab.data.tagging.TaggingEvalData`; a task checks its type
        (:meth:`bertlab.tasks.base.BertlabTask.eval_data`)."""
        raise NotImplementedError(f"{type(self).__name__} declares no evaluation data")

    # ------------------------------------------------------------------ prediction interface
    def set_predict_texts(self, inputs: Sequence[Any]) -> None:
        """Raw inputs (one per line of ``bertlab.predict``'s input) for ``predict_dataloader``."""
        raise NotImplementedError(f"{type(self).__name__} does not predict from raw inputs")

    def decode(self, split: str, predictions: Mapping[int, Any]) -> list[Any]:
        """``{sample index: the task's prediction}`` of a whole split -> one output per input."""
        raise NotImplementedError(f"{type(self).__name__} does not decode predictions")

    def format_prediction(self, text: Any, output: Any) -> dict[str, Any]:
        """One input and its decoded output -> a JSON-ready dict (``bertlab.predict``)."""
        raise NotImplementedError(f"{type(self).__name__} does not format predictions")

    def save_outputs(self, split: str, outputs: list[Any], out_dir: str) -> list[str]:
        """Write a split's outputs under ``out_dir``; returns the files written (default: none)."""
        return []
