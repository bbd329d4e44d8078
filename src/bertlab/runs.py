"""A run on disk: rebuild its trained model and DataModule from one checkpoint file (see
callbacks/run_config.py) and predict with them (:func:`predict_texts`), with clear errors for missing, corrupt or foreign files; find
the checkpoint to resume a run from (``ckpt_path=last`` / a run folder).

Checkpoints are never unpickled as arbitrary objects: every load here (and Lightning's
``fit``/``test`` in bertlab.train) uses ``torch.load(weights_only=True)``, which rebuilds
tensors and plain containers only and refuses any other global (a pickle whose
``__reduce__`` would run code is refused, not run). bertlab's checkpoints hold nothing
else: hparams and the run config are saved as plain dicts/lists (bertlab.utils.config.to_plain),
the RNG states as tensors and numpy arrays (which torch allows). ``SAFE_GLOBALS`` is the
allow-list for anything more, empty today.

Every checkpoint is verified before it is used (:func:`verify_checkpoint`, the one check all
loaders share: evaluate, predict, generate, export through :func:`read_checkpoint` /
:func:`load_run`, and the resume of train through :func:`resolve_resume_path` /
:func:`find_last_checkpoint`): its zip end record (not truncated), the CRC-32 of every zip
entry (what ``zipfile.ZipFile.testzip`` checks: bytes flipped anywhere in the data are
caught; a full read of the file), and every floating-point tensor of the model weights
(``state_dict``) and optimizer states finite. A bad checkpoint given by name is refused in
one line (:class:`CheckpointError`, exit status 2); on resume (``ckpt_path=last`` or a run
folder) a bad newer checkpoint is skipped with a WARNING naming it and why, and the previous
good one is used."""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from bertlab.callbacks.run_config import CKPT_KEY
from bertlab.nn.encoders import resolve_vocab_file
from bertlab.utils.atomic import is_temp_file
from bertlab.utils.errors import CheckpointError, ConfigError
from bertlab.utils.hydra_utils import check_values, data_rules

if TYPE_CHECKING:
    import pytorch_lightning as pl

log = logging.getLogger(__name__)

LAST = "last"
#: extra classes a checkpoint may hold besides what torch's weights_only unpickler allows
SAFE_GLOBALS: list[Any] = []


def is_complete_checkpoint(path: str) -> bool:
    """A cheap integrity check: a checkpoint file (torch's zip format) whose end-of-archive
    record is present, i.e. not truncated by a kill mid-write; never a temporary file.
    :func:`verify_checkpoint` is the full check."""
    return os.path.isfile(path) and not is_temp_file(path) and zipfile.is_zipfile(path)


#: the checkpoint parts whose floating-point tensors must all be finite
FINITE_KEYS = ("state_dict", "optimizer_states")
#: (path, size, mtime_ns) of files that passed the full check in this process (resume reads
#: the same file three times: find_last_checkpoint, check_resume_checkpoint, Lightning)
_VERIFIED: set[tuple[str, int, int]] = set()


def _file_key(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def _zip_problem(path: str) -> str | None:
    """Why the file is not an intact zip archive (truncated, or an entry whose CRC-32 does
    not match its bytes), or None."""
    if not zipfile.is_zipfile(path):
        return "truncated or not a torch checkpoint: no zip end record"
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        return f"corrupt bytes: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    if bad is not None:
        return f"corrupt bytes: zip entry {bad} fails its CRC-32 check"
    return None


def _nonfinite_problem(ckpt: Any) -> str | None:
    """Where the checkpoint holds a NaN or infinite value in its weights or optimizer states
    (the first such tensor and how many there are), or None."""
    if not isinstance(ckpt, dict):
        return None
    bad: list[str] = []

    def walk(node: Any, name: str) -> None:
        if isinstance(node, torch.Tensor):
            if node.is_floating_point() or node.is_complex():
                if not bool(torch.isfinite(node).all()):
                    bad.append(name)
        elif isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{name}.{key}")
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{name}[{i}]")

    for key in FINITE_KEYS:
        if key in ckpt:
            walk(ckpt[key], key)
    if not bad:
        return None
    more = f" and {len(bad) - 1} more tensors" if len(bad) > 1 else ""
    return f"non-finite values (NaN or inf) in {bad[0]}{more}"


def _load_verified(path: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a checkpoint that passes every check of
    :func:`verify_checkpoint`; one-line CheckpointError (``ckpt_path: <file> ...``) otherwise."""
    if not path:
        raise CheckpointError("ckpt_path: missing (pass ckpt_path=<file.ckpt>)")
    if not os.path.isfile(path):
        raise CheckpointError(f"ckpt_path: no such file: {path}")
    key = _file_key(path)
    checked = key in _VERIFIED
    if not checked:
        problem = _zip_problem(path)
        if problem is not None:
            raise CheckpointError(f"ckpt_path: {path} is not a readable checkpoint ({problem})")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, pickle.UnpicklingError) as err:
        raise _load_error(path, err) from err
    if not checked:
        problem = _nonfinite_problem(ckpt)
        if problem is not None:
            raise CheckpointError(f"ckpt_path: {path} holds {problem}: refused (a corrupt or diverged checkpoint)")
        _VERIFIED.add(key)
    return ckpt


def verify_checkpoint(path: str) -> str | None:
    """None for a sound checkpoint, else the one-line reason it is not (``<file> is not a
    readable checkpoint (...)``, ``<file> holds non-finite values ...``): not a temporary
    file, its zip end record present, every zip entry's CRC-32 right, loadable with
    ``weights_only=True``, every floating-point tensor of ``state_dict`` and
    ``optimizer_states`` finite. The one check behind every loader here."""
    if is_temp_file(path):
        return f"{path} is a temporary file (a save that did not finish)"
    try:
        _load_verified(path)
    except CheckpointError as err:
        return str(err).removeprefix("ckpt_path: ")
    return None


def checkpoint_dir(run_dir: str) -> str:
    """Where bertlab.train keeps a run's checkpoints (``<run>/checkpoints``; the folder itself
    if it holds .ckpt files directly)."""
    sub = os.path.join(run_dir, "checkpoints")
    return sub if os.path.isdir(sub) else run_dir


def find_last_checkpoint(folder: str) -> str | None:
    """The newest sound checkpoint of a run: ``last.ckpt`` (or ``last-v<N>.ckpt``), else any
    other ``*.ckpt``, newest first; None if there is none. Temporary files (a kill during a
    save) are never candidates; a candidate that fails :func:`verify_checkpoint` (truncated,
    corrupt bytes, non-finite weights) is skipped with a WARNING naming it and why."""
    folder = checkpoint_dir(folder)
    if not os.path.isdir(folder):
        return None
    files = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".ckpt") and not is_temp_file(f)]
    files.sort(key=lambda p: (os.path.basename(p).startswith(LAST), os.path.getmtime(p)), reverse=True)
    skipped: list[str] = []
    for path in files:
        problem = verify_checkpoint(path)
        if problem is None:
            if skipped:
                log.warning("resuming from the previous sound checkpoint %s (skipped: %s)", path, ", ".join(skipped))
            return path
        log.warning("skipping checkpoint %s: %s", path, problem)
        skipped.append(os.path.basename(path))
    return None


def resolve_resume_path(ckpt_path: str | None, run_dir: str) -> str | None:
    """The checkpoint ``train`` should resume from.

    * ``None`` -> None (a fresh run);
    * ``"last"`` -> the newest sound checkpoint of *this* run folder (``run_dir``, e.g.
      ``hydra.run.dir=<old run>``), or None (a fresh start) when it has none yet, so the
      same command starts a run and resumes it after a kill;
    * a folder -> the newest sound checkpoint in it (or in its ``checkpoints/``);
      CheckpointError when there is none;
    * a file -> itself, once verified (CheckpointError otherwise, no fallback: the user named it).

    "Sound": :func:`verify_checkpoint`; a bad newer one is skipped with a WARNING.
    """
    if ckpt_path is None or str(ckpt_path) == "":
        return None
    ckpt_path = str(ckpt_path)
    if ckpt_path == LAST:
        return find_last_checkpoint(run_dir)
    if os.path.isdir(ckpt_path):
        found = find_last_checkpoint(ckpt_path)
        if found is None:
            raise CheckpointError(f"ckpt_path: no complete checkpoint (*.ckpt) in {checkpoint_dir(ckpt_path)}")
        return found
    if not os.path.isfile(ckpt_path):
        raise CheckpointError(f"ckpt_path: no such file: {ckpt_path}")
    if not is_complete_checkpoint(ckpt_path):
        raise CheckpointError(
            f"ckpt_path: {ckpt_path} is not a complete checkpoint (truncated, a temporary file, or not a torch checkpoint)"
        )
    problem = verify_checkpoint(ckpt_path)
    if problem is not None:
        raise CheckpointError(f"ckpt_path: {problem}")
    return ckpt_path


def check_resume_checkpoint(path: str, model_target: str, ckpt: dict[str, Any] | None = None) -> None:
    """Refuse to resume a run from a checkpoint of another task (another LightningModule);
    ``ckpt``: the checkpoint already read (read_checkpoint) by the caller."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    saved = ckpt[CKPT_KEY].get("config", {}).get("model", {}).get("_target_")
    if saved and saved != model_target:
        raise CheckpointError(
            f"ckpt_path: {path} is a {saved.rsplit('.', 1)[-1]} checkpoint, this run trains a {model_target.rsplit('.', 1)[-1]}"
        )


def read_checkpoint(path: str) -> dict[str, Any]:
    """A bertlab checkpoint, verified (:func:`verify_checkpoint`) and loaded with
    ``weights_only=True``; one-line CheckpointError for anything else."""
    ckpt = _load_verified(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"ckpt_path: {path} is not a Lightning checkpoint")
    if CKPT_KEY not in ckpt:
        raise CheckpointError(f"ckpt_path: {path} was not written by bertlab's train (no run config inside)")
    return ckpt


def _load_error(path: str, err: BaseException) -> CheckpointError:
    """A refused global (torch: 'Unsupported global: GLOBAL x.y ...' / 'Trying to load unsupported
    GLOBAL x.y ...') is an unsafe file; anything else an unreadable one."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    unsafe = next((line for line in lines if "GLOBAL" in line or "Unsupported global" in line), None)
    if unsafe is not None:
        return CheckpointError(
            f"ckpt_path: {path} holds pickled objects other than tensors and plain data "
            f"({unsafe.rstrip('.')}); refused without unpickling them "
            f"(only weights_only=True loads; see bertlab.runs.SAFE_GLOBALS)"
        )
    detail = next((line for line in lines if line.startswith("Unsupported")), lines[0] if lines else "")
    return CheckpointError(f"ckpt_path: {path} is not a readable checkpoint ({type(err).__name__}: {detail})")


#: data keys a checkpoint's model depends on (its tokens), with the value a run config without them had
FIXED_DATA_KEYS = ("tokenizer",)
FIXED_DATA_DEFAULTS = {"tokenizer": "char"}


def load_run(path: str, data_overrides: Mapping[str, Any] | None = None, expect_task: str | None = None):
    """(model in eval mode, datamodule, saved config) from a checkpoint written by bertlab.train."""
    ckpt = read_checkpoint(path)
    cfg = OmegaConf.create(ckpt[CKPT_KEY]["config"])
    target = cfg.model._target_
    if expect_task and expect_task not in target:
        raise CheckpointError(f"ckpt_path: {path} is a {target.rsplit('.', 1)[-1]} checkpoint, not a {expect_task} one")
    if data_overrides:  # e.g. evaluate's +data.key=value: checked by the rules of the run's DataModule
        for key in FIXED_DATA_KEYS:  # the model was trained on these tokens: they cannot change
            trained = cfg.data.get(key, FIXED_DATA_DEFAULTS[key])
            if key in data_overrides and data_overrides[key] != trained:
                raise ConfigError(
                    f"data.{key}",
                    f"the checkpoint {path} was trained with data.{key}={trained}; "
                    f"a model cannot be evaluated on {data_overrides[key]!r} inputs",
                )
        cfg.data = OmegaConf.merge(cfg.data, OmegaConf.create(dict(data_overrides)))
        check_values(cfg.data, data_rules(cfg), prefix="data.")
    model_cls = cast("type[pl.LightningModule]", get_class(target))
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            model = model_cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _load_error(path, err) from err
    except (RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(f"ckpt_path: {path} does not match {target} ({str(err).splitlines()[0]})") from err
    model.eval()
    datamodule = instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    datamodule.keep_ids = model.hparams.get("vocab_keep_ids")
    return model, datamodule, cfg


def predict_texts(model, datamodule, texts: Sequence[Any]) -> list[dict]:
    """Predictions for raw inputs (texts; MRC: question records) through the DataModule's
    prediction interface: ``set_predict_texts`` -> the task's ``predict_step`` per batch ->
    the task's ``decode_predictions`` (the DataModule's ``decode``; MRC: and the vote across
    passages) -> ``format_prediction`` per input."""
    datamodule.set_predict_texts(texts)
    preds: dict[int, Any] = {}
    with torch.inference_mode():
        for batch in datamodule.predict_dataloader():
            preds.update(model.predict_step(batch, 0))
    decoded = model.decode_predictions(datamodule, "predict", preds)
    return [datamodule.format_prediction(t, d) for t, d in zip(texts, decoded)]
