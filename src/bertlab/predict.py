"""Run a checkpoint on raw text and print JSON, one object per input text:

    python -m bertlab.predict ckpt_path=<file.ckpt> text="..."
    python -m bertlab.predict ckpt_path=<file.ckpt> input=<file, one text a line> [output=<file.jsonl>]
    python -m bertlab.predict ckpt_path=<file.ckpt> task=mrc question="..." passages='["...","..."]'

CWS gives words with [start, end) character offsets into the input text. Reading
comprehension (``question=`` + ``passages=``, or ``input=`` with one JSON object
``{"question", "passages"}`` a line) gives the voted answer, its score and every passage's
candidate. The task's DataModule decides the input and output format
(``set_predict_texts`` / ``decode`` / ``format_prediction``; the task's ``decode_predictions``
adds what the DataModule does not decide, e.g. the MRC vote); ``task=`` (optional) checks
that the checkpoint is of that task.
"""

from __future__ import annotations

import json
import os
import re
import sys

import hydra
from omegaconf import DictConfig

from bertlab.data.io import open_text_lines
from bertlab.runs import load_run, predict_texts
from bertlab.utils.checkout import warn_if_other_checkout
from bertlab.utils.cli_checks import MRC_MODULE, check_output_file, predict_expected_task
from bertlab.utils.errors import ConfigError
from bertlab.utils.hydra_utils import exit_on_user_error, precheck_overrides, repo_root

CONFIG_DIR = os.path.join(repo_root(), "conf")


#: task=... -> a substring of the checkpoint's LightningModule path
TASK_MODULES = {"cws": "sequence_labeling", "ner": "sequence_labeling", "mrc": MRC_MODULE}


def _inputs(cfg: DictConfig) -> list:
    """The raw inputs: texts (text= / input=) or question records (question= + passages=)."""
    given = [k for k in ("text", "input", "question") if cfg.get(k) is not None]
    if len(given) != 1:
        raise ConfigError("text", "give exactly one of text=..., input=<file> or question=... with passages=[...]")
    if given[0] == "question":
        passages = cfg.get("passages")
        if isinstance(passages, str):
            passages = [passages]
        if not passages:
            raise ConfigError("passages", "question=... needs passages=['...', ...] (a non-empty list)")
        return [{"question": str(cfg.question), "passages": [str(p) for p in passages]}]
    if cfg.get("passages") is not None:
        raise ConfigError("passages", "passages=... goes with question=...")
    return [str(cfg.text)] if given[0] == "text" else [line for _, line in open_text_lines(cfg.input)]


def predict(cfg: DictConfig) -> list[dict]:
    check_output_file(cfg.get("output"), inputs=[cfg.get("input"), cfg.get("ckpt_path")])  # before any loading
    texts = _inputs(cfg)
    expect = predict_expected_task(cfg.get("task"), texts, TASK_MODULES)
    model, datamodule, _ = load_run(cfg.ckpt_path, expect_task=expect)
    records = predict_texts(model, datamodule, texts) if texts else []
    out = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)  # no input: an empty file
    if cfg.get("output"):
        with open(cfg.output, "w", encoding="utf-8") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    return records


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    predict(cfg)


FREE_TEXT_KEYS = ("text", "input", "output", "question")
FREE_TEXT_LIST_KEYS = ("passages",)


def _quote(value: str) -> str:
    # hydra: backslashes are literal except before a quote or at the end of the string
    value = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, value) + "'"


def quote_free_text(argv: list[str]) -> list[str]:
    """Hydra's override grammar rejects most non-ASCII text unquoted: quote free-text values
    (and the items of an unquoted list ``passages=[a,b]``, split at ASCII commas)."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in FREE_TEXT_LIST_KEYS and not any(q in value for q in "'\""):
            items = value[1:-1].split(",") if value.startswith("[") and value.endswith("]") else [value]
            out.append(f"{key}=[" + ",".join(_quote(v) for v in items) + "]")
            continue
        if (
            eq
            and key in FREE_TEXT_KEYS
            and not (value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) > 1)
        ):
            value = _quote(value)
        out.append(f"{key}{eq}{value}" if eq else arg)
    return out


def cli() -> None:
    warn_if_other_checkout()
    sys.argv[1:] = quote_free_text(sys.argv[1:])
    precheck_overrides(CONFIG_DIR, "predict", sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
