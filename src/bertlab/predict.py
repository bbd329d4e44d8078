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

Input and output (docs/reliability.md):

* ``text=`` / ``question=`` / ``passages=`` are text: ``${...}`` in them is never interpolated
  (:func:`quote_free_text` escapes it before Hydra parses the command line);
* ``input=`` is streamed, :data:`CHUNK_LINES` lines at a time, so memory does not grow with the
  input; order and every character are kept. Progress goes to stderr: a rich bar on a terminal,
  else a plain line at every 10 % (the lines are counted first, on the raw bytes);
* ``output=`` is streamed into a temporary file in the same folder and renamed when complete
  (:func:`bertlab.utils.atomic.atomic_write`): a failure (a full disk) leaves an existing file as
  it was; JSON lines escape U+2028, U+2029 and U+0085, so any line splitter reads one record a line;
* ``threads=N``: torch's intra-op threads.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

import hydra
from omegaconf import DictConfig

from bertlab.data.io import open_binary, open_text_lines
from bertlab.runs import load_run, predict_texts
from bertlab.utils.atomic import atomic_write
from bertlab.utils.checkout import warn_if_other_checkout
from bertlab.utils.cli_checks import check_output_file
from bertlab.utils.errors import ConfigError, DataError
from bertlab.utils.hydra_utils import exit_on_user_error, precheck_overrides, repo_root, set_threads

if TYPE_CHECKING:
    from rich.progress import Progress as Bar
    from rich.progress import TaskID

CONFIG_DIR = os.path.join(repo_root(), "conf")
T = TypeVar("T")

#: part of the module path of every reading-comprehension task (the MLM reader and the seq2seq reader)
MRC_MODULE = "reading_comprehension"
#: task=... -> a substring of the checkpoint's LightningModule path
TASK_MODULES = {"cws": "sequence_labeling", "ner": "sequence_labeling", "mrc": MRC_MODULE}
#: input lines predicted (and held in memory) at a time: memory does not grow with the input
CHUNK_LINES = 1000


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items, in order; only one list is held at a time."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def count_lines(path: str) -> int | None:
    """The number of lines :func:`open_text_lines` yields for ``path``, counted on the raw bytes
    (for the progress display); None when the file cannot be read (the reader then says why)."""
    n, last = 0, b"\n"
    try:
        with open_binary(path) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                n += block.count(b"\n")
                last = block[-1:]
    except (DataError, OSError, EOFError, ValueError):  # lzma/gzip errors are OSError/EOFError/ValueError
        return None
    return n + (last != b"\n")


def _inputs(cfg: DictConfig) -> tuple[Iterable[Any], int | None]:
    """The raw inputs, streamed (texts from text= / input=, or question records from question= +
    passages=), and how many there are (None if unknown)."""
    given = [k for k in ("text", "input", "question") if cfg.get(k) is not None]
    if len(given) != 1:
        raise ConfigError("text", "give exactly one of text=..., input=<file> or question=... with passages=[...]")
    if given[0] == "question":
        passages = cfg.get("passages")
        if isinstance(passages, str):
            passages = [passages]
        if not passages:
            raise ConfigError("passages", "question=... needs passages=['...', ...] (a non-empty list)")
        return [{"question": str(cfg.question), "passages": [str(p) for p in passages]}], 1
    if cfg.get("passages") is not None:
        raise ConfigError("passages", "passages=... goes with question=...")
    if given[0] == "text":
        return [str(cfg.text)], 1
    return (line for _, line in open_text_lines(cfg.input)), count_lines(cfg.input)


#: characters ``str.splitlines`` breaks lines at that ``json.dumps(ensure_ascii=False)`` writes raw
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_line(record: Any) -> str:
    """One JSON-lines record: every line break inside it escaped, so that any line splitter
    (``str.splitlines`` included) reads one record per line."""
    return json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


class Progress:
    """Progress of a prediction on stderr: a rich bar on a terminal, else a plain line every
    10 % (none for a single input or an unknown total)."""

    def __init__(self, total: int | None, stream: IO[str] | None = None):
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self._bar: Bar | None = None
        self._task: TaskID | None = None
        self._next_tenth = 1
        if total is not None and total > 1 and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                "predict", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=Console(file=self.stream)
            )
            self._task = self._bar.add_task("predict", total=total)
            self._bar.start()

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None and self._task is not None:  # set together
            self._bar.update(self._task, completed=self.done)
            return
        if not self.total or self.total <= 1:
            return
        tenth = self.done * 10 // self.total
        if tenth >= self._next_tenth:
            self._next_tenth = tenth + 1
            print(f"predict: {self.done}/{self.total} lines ({tenth * 10}%)", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def predict_stream(
    model: Any, datamodule: Any, inputs: Iterable[Any], chunk_lines: int = CHUNK_LINES, progress: Progress | None = None
) -> Iterator[str]:
    """JSON lines for ``inputs``, in order, predicted ``chunk_lines`` inputs at a time (memory
    bounded by the chunk, not the input)."""
    for chunk in chunked(inputs, chunk_lines):
        for record in predict_texts(model, datamodule, chunk):
            yield json_line(record)
        if progress is not None:
            progress.advance(len(chunk))


def predict_expected_task(task: str | None, inputs: Sequence[Any]) -> str | None:
    """The ``expect_task`` for ``load_run``: the one ``task=`` names, and for question records
    (``question=`` / ``passages=``) a reading-comprehension checkpoint, so a word-segmentation
    checkpoint given a question stops with one line (exit status 2) instead of a traceback."""
    expect = TASK_MODULES.get(task, task) if task else None
    records = any(isinstance(x, dict) for x in inputs)
    if records and expect is not None and expect != MRC_MODULE:
        raise ConfigError("question", f"question=/passages= need a reading-comprehension checkpoint, not task={task}")
    if records:
        return MRC_MODULE
    return expect


def predict(cfg: DictConfig) -> int:
    """Predict every input and write the JSON lines to ``output=`` (atomically: streamed into a
    temporary file in the same folder, renamed when complete, so a failure or a full disk
    leaves an existing file as it was) or stdout; returns the number of records."""
    check_output_file(cfg.get("output"), inputs=[cfg.get("input"), cfg.get("ckpt_path")])  # before any loading
    set_threads(cfg)
    inputs, total = _inputs(cfg)
    first = inputs[:1] if isinstance(inputs, list) else []  # question records come from question=, not files
    model, datamodule, _ = load_run(cfg.ckpt_path, expect_task=predict_expected_task(cfg.get("task"), first))
    progress = Progress(total)
    count = 0

    def write(out: Any) -> None:
        nonlocal count
        for line in predict_stream(model, datamodule, inputs, progress=progress):
            out.write(line)
            count += 1

    try:
        if cfg.get("output"):
            atomic_write(cfg.output, lambda fh: write(_Utf8(fh)))
        else:
            write(sys.stdout)
            sys.stdout.flush()
    finally:
        progress.close()
    return count


class _Utf8:
    """A text ``write`` over a binary file."""

    def __init__(self, fh: IO[bytes]):
        self.fh = fh

    def write(self, text: str) -> None:
        self.fh.write(text.encode("utf-8"))


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    predict(cfg)


FREE_TEXT_KEYS = ("text", "input", "output", "question")
FREE_TEXT_LIST_KEYS = ("passages",)
#: values that are text: never interpolated (``text='价格${x}元'`` is that text)
TEXT_KEYS = ("text", "question", "passages")


def escape_interpolation(value: str) -> str:
    """OmegaConf's escapes for literal text: ``${`` -> ``\\${``, the backslashes right before it
    doubled (only those are special), so the config value reads back exactly as given."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)


def _quote(value: str) -> str:
    # hydra: backslashes are literal except before a quote or at the end of the string
    value = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, value) + "'"


def quote_free_text(argv: list[str]) -> list[str]:
    """Hydra's override grammar rejects most non-ASCII text unquoted: quote free-text values
    (and the items of an unquoted list ``passages=[a,b]``, split at ASCII commas); text values
    (:data:`TEXT_KEYS`) are escaped so that ``${...}`` in them is text, not an interpolation."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in TEXT_KEYS:
            value = escape_interpolation(value)
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
