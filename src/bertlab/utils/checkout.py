"""Which checkout a command works in: the imported package's, not necessarily the current directory's.

Configs (``conf/``), data (``data/``) and runs (``logs/``) are found from the imported bertlab
(``paths.root_dir: ${repo_root:}``). With one virtual environment shared by several checkouts
(an editable install of one of them, or git worktrees), a command started in checkout B with
bertlab imported from checkout A reads A's configs and data and writes its runs into A.
:func:`warn_if_other_checkout` says so, one line on stderr, when the entry points start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bertlab.utils.hydra_utils import repo_root

__all__ = ["enclosing_checkout", "other_checkout_warning", "warn_if_other_checkout"]


def enclosing_checkout(start: str | os.PathLike) -> Path | None:
    """The bertlab checkout that holds ``start`` (a folder with ``conf/train.yaml`` and
    ``src/bertlab/``), searching upwards; None outside any."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "train.yaml").is_file() and (folder / "src" / "bertlab").is_dir():
            return folder
    return None


def other_checkout_warning(cwd: str | os.PathLike | None = None, root: str | os.PathLike | None = None) -> str | None:
    """The warning line when the current directory lies in another bertlab checkout than the
    one the package is imported from (``root``, default :func:`repo_root`); else None."""
    here = enclosing_checkout(os.getcwd() if cwd is None else cwd)
    used = Path(repo_root() if root is None else root).resolve()
    if here is None or here == used:
        return None
    return (
        f"bertlab: warning: bertlab is imported from {used}, not from this checkout {here}: configs, data and "
        f"runs come from and go to {used} (use {here}'s code: PYTHONPATH={here / 'src'} or pip install -e {here})"
    )


def warn_if_other_checkout() -> None:
    """Print :func:`other_checkout_warning` (one line on stderr) when there is one."""
    line = other_checkout_warning()
    if line:
        print(line, file=sys.stderr, flush=True)
