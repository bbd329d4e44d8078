"""Masked-LM pretraining of a small BERT or ALBERT, exported as a Hugging Face checkpoint.

``python -m bertlab.train experiment=pretrain_mlm`` (BERT) / ``experiment=pretrain_albert``.
The encoder and its MLM head come from :func:`bertlab.nn.encoders.build_encoder`; the head
runs ONLY on the target positions (hidden states gathered first: a full-vocabulary head at
every position costs several times the encoder). Batches come from
:class:`bertlab.data.mlm_datamodule.MlmDataModule`.

At the end of fitting (and on demand: :meth:`MlmPretrainingModule.export_pretrained`, or
``python -m bertlab.tasks.mlm_pretraining CKPT OUT_DIR [--fp32]``) the model is written as a
checkpoint directory that ``encoder.pretrained=<dir>`` loads like bert-base-chinese:
``config.json``, ``model.safetensors`` (the ``*ForMaskedLM`` model, MLM head included; fp16
by default), ``vocab.txt`` (the trimmed vocab, one line per embedding row),
``tokenizer_config.json`` (BertTokenizer), ``CARD.md`` (command, steps, tokens, wall time,
final held-out MLM loss/accuracy of the exported weights), ``curves.csv`` and
``mlm_curves.png``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from bertlab.data.mlm_datamodule import IGNORE, PretrainingEvalData
from bertlab.data.tokenization import load_vocab_tokens
from bertlab.nn.encoders import _model_classes, resolve_vocab_file
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalSharding
from bertlab.utils.distributed import sum_across_ranks
from bertlab.utils.errors import CheckpointError

log = logging.getLogger(__name__)


class MlmPretrainingModule(EvalSharding, BertlabTask):
    monitor = "val/mlm_acc"

    def __init__(
        self,
        encoder: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        vocab_keep_ids: list[int] | None = None,
        export_dir: str | None = None,
        output_dir: str | None = None,
        export_fp16: bool = True,
        export_on_fit_end: bool = True,
        name: str = "mlm",
        command: str | None = None,
    ):
        super().__init__(
            encoder=encoder,
            optimizer=optimizer,
            scheduler=scheduler,
            vocab_keep_ids=vocab_keep_ids,
            export_dir=export_dir,
            output_dir=output_dir,
            export_fp16=export_fp16,
            export_on_fit_end=export_on_fit_end,
            name=name,
            command=command,
        )
        self.encoder, self.mlm_head = self.build_encoder(with_mlm_head=True)
        self.model_type = self.encoder.config.model_type
        self.history: list[dict[str, Any]] = []  # curves: one row per logged train step / validation
        self.tokens_seen = 0
        self.packed_steps = 0
        self.train_seconds = 0.0
        self._t_fit: float | None = None
        self._window = [0.0, 0, 0]  # train nll sum, correct, targets since the last history row
        self._val = [0.0, 0, 0]
        self._final: dict[str, float] | None = None

    # --------------------------------------------------------------- the model
    def mlm_logits(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits at the target positions [M, V], their labels [M]): the head sees only them."""
        hidden = self.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long()
        ).last_hidden_state
        target = batch["labels"] != IGNORE  # shape: [B, T]
        picked = hidden[target]  # shape: [M, H], gathered BEFORE the head
        return self.mlm_head(picked), batch["labels"][target]

    def _nll_correct(self, batch) -> tuple[torch.Tensor, torch.Tensor, int]:
        logits, labels = self.mlm_logits(batch)
        nll = F.cross_entropy(logits.float(), labels, reduction="sum")
        correct = (logits.argmax(-1) == labels).sum()
        return nll, correct, labels.numel()

    def training_step(self, batch, batch_idx):
        nll, correct, n = self._nll_correct(batch)
        loss = nll / max(n, 1)
        bs = batch["input_ids"].size(0)
        self.log("train/mlm_loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/mlm_acc", correct.float() / max(n, 1), prog_bar=True, batch_size=bs)
        self.tokens_seen += int(batch["attention_mask"].sum())
        self.packed_steps += int(bool(batch.get("packed", False)))
        w = self._window
        w[0] += float(nll.detach())
        w[1] += int(correct)
        w[2] += n
        every = self.trainer.log_every_n_steps if self._trainer is not None else 50
        if (self.global_step + 1) % max(1, every) == 0 and w[2]:
            self.history.append(
                {
                    "step": self.global_step + 1,
                    "tokens": self.tokens_seen,
                    "split": "train",
                    "mlm_loss": w[0] / w[2],
                    "mlm_acc": w[1] / w[2],
                }
            )
            self._window = [0.0, 0, 0]
        return loss

    # --------------------------------------------------------------- evaluation
    # Under DDP each rank validates its share of the batches (EvalSharding) and the sums of
    # nll / correct / targets are added across ranks: the metrics of the whole held-out set.
    def on_validation_epoch_start(self) -> None:
        self.start_eval_shard(self.trainer.val_dataloaders)
        self._val = [0.0, 0, 0]

    def validation_step(self, batch, batch_idx):
        if not self.owns_eval_batch(batch_idx):
            return
        nll, correct, n = self._nll_correct(batch)
        self._val[0] += float(nll)
        self._val[1] += int(correct)
        self._val[2] += n

    def on_validation_epoch_end(self) -> None:
        nll, correct, n = sum_across_ranks(self._val)
        correct, n = int(correct), int(n)
        if not n:
            return
        metrics = {"mlm_loss": nll / n, "mlm_acc": correct / n, "n_targets": n, "step": self.global_step}
        self.last_metrics["val"] = metrics
        if not self.trainer.sanity_checking:
            self.history.append(
                {
                    "step": self.global_step,
                    "tokens": self.tokens_seen,
                    "split": "val",
                    "mlm_loss": metrics["mlm_loss"],
                    "mlm_acc": metrics["mlm_acc"],
                }
            )
        self.log("val/mlm_loss", metrics["mlm_loss"])
        self.log("val/mlm_acc", metrics["mlm_acc"], prog_bar=True)

    @torch.no_grad()
    def heldout_metrics(self, loader) -> dict[str, float]:
        """MLM loss/accuracy of the current weights over a whole loader (eval mode)."""
        was_training = self.training
        self.eval()
        nll_sum, correct_sum, n_sum = 0.0, 0, 0
        for batch in loader:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            nll, correct, n = self._nll_correct(batch)
            nll_sum, correct_sum, n_sum = nll_sum + float(nll), correct_sum + int(correct), n_sum + n
        self.train(was_training)
        return {"mlm_loss": nll_sum / max(n_sum, 1), "mlm_acc": correct_sum / max(n_sum, 1), "n_targets": n_sum}

    # --------------------------------------------------------------- bookkeeping
    def on_fit_start(self) -> None:
        self._t_fit = time.time()

    def on_fit_end(self) -> None:
        if self._t_fit is not None:
            self.train_seconds += time.time() - self._t_fit
            self._t_fit = None
        loader = self._final_loader(None)
        if loader is not None and not self.trainer.fast_dev_run:
            self._final_validation(loader)
        if self.hparams.export_on_fit_end and self.trainer.is_global_zero:
            out = self.hparams.export_dir or os.path.join(
                self.hparams.output_dir or self.trainer.default_root_dir, "pretrained"
            )
            self.export_pretrained(out, fp16=self.hparams.export_fp16)

    def _final_validation(self, loader) -> None:
        """Held-out MLM metrics of the final weights (training rarely ends on a validation
        step): they become the run's last val/* metrics, in the loggers and the curves."""
        last = self.last_metrics.get("val", {})
        if last.get("step") == self.global_step and "n_targets" in last:  # Lightning just validated these weights
            self._final = {k: last[k] for k in ("mlm_loss", "mlm_acc", "n_targets")}
            return
        final = self.heldout_metrics(loader)
        self.last_metrics["val"] = final | {"step": self.global_step}
        values = {"val/mlm_loss": final["mlm_loss"], "val/mlm_acc": final["mlm_acc"]}
        self.trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        for lg in self.loggers:
            lg.log_metrics(values, step=self.global_step)
            lg.save()
        if not any(r["split"] == "val" and r["step"] == self.global_step for r in self.history):
            self.history.append(
                {
                    "step": self.global_step,
                    "tokens": self.tokens_seen,
                    "split": "val",
                    "mlm_loss": final["mlm_loss"],
                    "mlm_acc": final["mlm_acc"],
                }
            )
        self._final = final

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        elapsed = time.time() - self._t_fit if self._t_fit is not None else 0.0
        checkpoint["mlm_progress"] = {
            "tokens_seen": self.tokens_seen,
            "packed_steps": self.packed_steps,
            "train_seconds": self.train_seconds + elapsed,
            "history": self.history,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("mlm_progress", {})
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.packed_steps = int(state.get("packed_steps", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.history = list(state.get("history", []))

    # --------------------------------------------------------------- export
    def hf_model(self) -> torch.nn.Module:
        """A fresh ``*ForMaskedLM`` holding a copy of this encoder + MLM head (fp32)."""
        _, _, mlm_cls, base_attr, head_attr = _model_classes(self.model_type)
        config = copy.deepcopy(self.encoder.config)
        config.architectures = [mlm_cls.__name__]
        full = mlm_cls(config)
        getattr(full, base_attr).load_state_dict(self.encoder.state_dict())
        getattr(full, head_attr).load_state_dict(self.mlm_head.state_dict())
        full.tie_weights()
        return full.float().eval()

    def vocab_tokens(self) -> list[str]:
        tokens = load_vocab_tokens(resolve_vocab_file(self.hparams.encoder))
        keep = self.hparams.vocab_keep_ids
        return tokens if keep is None else [tokens[i] for i in keep]

    def export_pretrained(self, out_dir: str, fp16: bool = True, loader=None) -> dict[str, Any]:
        """Write the HF checkpoint directory (see the module doc); returns the card's facts."""
        os.makedirs(out_dir, exist_ok=True)
        tokens = self.vocab_tokens()
        full = self.hf_model()
        if len(tokens) != full.config.vocab_size:
            raise CheckpointError(
                f"export to {out_dir}: {len(tokens)} vocab tokens but {full.config.vocab_size} embedding rows"
            )
        if fp16:
            full = full.half()
        full.save_pretrained(out_dir)
        with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(tokens) + "\n")
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(
                {
                    "tokenizer_class": "BertTokenizer",
                    "do_lower_case": True,
                    "tokenize_chinese_chars": True,
                    "model_max_length": int(full.config.max_position_embeddings),
                    "unk_token": "[UNK]",
                    "sep_token": "[SEP]",
                    "pad_token": "[PAD]",
                    "cls_token": "[CLS]",
                    "mask_token": "[MASK]",
                },
                f,
                indent=2,
            )
        facts = self._card_facts(out_dir, fp16, loader)
        self._write_curves(out_dir)
        self._write_card(out_dir, facts)
        log.info("exported the pretrained %s to %s", self.model_type, out_dir)
        return facts

    def _final_loader(self, loader):
        if loader is not None:
            return loader
        data = self._held_out()
        return data.loader() if data is not None and data.loader is not None else None

    def _held_out(self) -> PretrainingEvalData | None:
        """The DataModule's held-out split (None without a trainer or DataModule)."""
        if self._trainer is None or getattr(self.trainer, "datamodule", None) is None:
            return None
        return self.eval_data("val", PretrainingEvalData)

    def _card_facts(self, out_dir: str, fp16: bool, loader) -> dict[str, Any]:
        loader = self._final_loader(loader)
        facts: dict[str, Any] = {
            "name": self.hparams.name,
            "model_type": self.model_type,
            "command": self.hparams.command or " ".join(["python", "-m", "bertlab.train", *sys.argv[1:]]),
            "steps": int(self.global_step),
            "tokens_seen": int(self.tokens_seen),
            "packed_steps": int(self.packed_steps),
            "wall_seconds": round(self.train_seconds, 1),
            "dtype": "float16" if fp16 else "float32",
            "vocab_size": int(self.encoder.config.vocab_size),
            "parameters": int(sum(p.numel() for p in self.hf_model().parameters())),
            "config": {
                k: getattr(self.encoder.config, k)
                for k in (
                    "hidden_size",
                    "num_hidden_layers",
                    "num_attention_heads",
                    "intermediate_size",
                    "max_position_embeddings",
                    "embedding_size",
                )
                if hasattr(self.encoder.config, k)
            },
        }
        if loader is not None:
            final = self._final
            facts["heldout_trained_weights"] = final if final is not None else self.heldout_metrics(loader)
            # the exported file, read back as a user will read it (fp16 rounding included)
            loaded = MlmPretrainingModule(
                dict(self.hparams.encoder) | {"pretrained": out_dir, "num_layers": None},
                self.hparams.optimizer,
                export_on_fit_end=False,
            )
            facts["heldout_exported_weights"] = loaded.to(self.device).heldout_metrics(loader)
        held_out = self._held_out()
        if held_out is not None:
            facts["held_out_texts"] = held_out.held_out_texts
        self._final = None  # used once: a later export re-measures
        with open(os.path.join(out_dir, "card.json"), "w", encoding="utf-8") as f:
            json.dump(facts, f, indent=2, ensure_ascii=False)
        return facts

    def _write_curves(self, out_dir: str) -> None:
        rows = self.history
        with open(os.path.join(out_dir, "curves.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["step", "tokens", "split", "mlm_loss", "mlm_acc"])
            w.writeheader()
            w.writerows(rows)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for split, style in (("train", "-"), ("val", "o-")):
            pts = [r for r in rows if r["split"] == split]
            if not pts:
                continue
            steps = [r["step"] for r in pts]
            axes[0].plot(steps, [r["mlm_loss"] for r in pts], style, label=split, markersize=3)
            axes[1].plot(steps, [r["mlm_acc"] for r in pts], style, label=split, markersize=3)
        for ax, what in zip(axes, ("MLM loss (nats)", "MLM accuracy")):
            ax.set_xlabel("step")
            ax.set_ylabel(what)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(f"{self.hparams.name}: {self.model_type} MLM pretraining")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "mlm_curves.png"), dpi=100)
        plt.close(fig)

    def _write_card(self, out_dir: str, facts: dict[str, Any]) -> None:
        def fmt(m):
            return f"loss {m['mlm_loss']:.4f}, accuracy {m['mlm_acc']:.4f} over {m['n_targets']} masked tokens"

        lines = [
            f"# {facts['name']}: a small Chinese {facts['model_type'].upper()} pretrained here by masked LM",
            "",
            "Made by bertlab (`bertlab.tasks.mlm_pretraining`) from scratch on the shipped TRAINING texts only",
            "(People's Daily 1998 CWS training split, sentiment train, LIC2019 train, CMRC 2018 training-split",
            "contexts; every dev/test text excluded, see `bertlab.data.pretraining_corpus`).",
            "Load it with `encoder.pretrained=<this directory>` (its vocab.txt is the trimmed vocab).",
            "",
            f"- command: `{facts['command']}`",
            f"- steps: {facts['steps']} ({facts['packed_steps']} of them on packed {facts['config'].get('max_position_embeddings')}-token sequences)",
            f"- tokens seen (non-padding): {facts['tokens_seen']:,}",
            f"- training wall time: {facts['wall_seconds']:.0f} s",
            f"- architecture: {json.dumps(facts['config'])}, vocab {facts['vocab_size']}, {facts['parameters']:,} parameters",
            f"- weights: model.safetensors in {facts['dtype']} (loaded as float32)",
        ]
        if "heldout_exported_weights" in facts:
            lines += [
                f"- final held-out MLM (exported weights): {fmt(facts['heldout_exported_weights'])}",
                f"- final held-out MLM (fp32 weights before export): {fmt(facts['heldout_trained_weights'])}",
            ]
        lines += ["", "Curves: `mlm_curves.png` (data in `curves.csv`); all facts: `card.json`.", ""]
        with open(os.path.join(out_dir, "CARD.md"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines))

    # --------------------------------------------------------------- optimisation


def export_from_checkpoint(ckpt_path: str, out_dir: str, fp16: bool = True) -> dict[str, Any]:
    """Export a Lightning checkpoint of this task (e.g. ``last.ckpt``) as an HF directory;
    held-out metrics are computed when the run's data can be rebuilt."""
    from bertlab.runs import load_run

    model, dm, _ = load_run(ckpt_path, expect_task="MlmPretrainingModule")
    dm.setup("validate")
    return model.export_pretrained(out_dir, fp16=fp16, loader=dm.val_dataloader())


def main(argv: list[str] | None = None) -> None:
    from bertlab.utils.errors import BertlabError

    ap = argparse.ArgumentParser(description="Export an MLM pretraining checkpoint as a Hugging Face directory.")
    ap.add_argument("ckpt_path")
    ap.add_argument("out_dir")
    ap.add_argument("--fp32", action="store_true", help="store float32 weights (default float16)")
    args = ap.parse_args(argv)
    try:
        facts = export_from_checkpoint(args.ckpt_path, args.out_dir, fp16=not args.fp32)
    except BertlabError as err:
        print(f"bertlab: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(facts, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
