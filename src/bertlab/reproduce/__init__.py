"""One command per post: ``python -m bertlab.reproduce <name>`` runs the post's trainings and
writes its table (``python -m bertlab.reproduce list`` names them; ``--dry-run`` prints the
commands only).

Every module of this package except ``base`` is one reproduction: it defines
``REPRODUCTION = base.Reproduction(...)`` (what it runs, the table it writes and where; see
:mod:`bertlab.reproduce.base`). Adding a post is adding one such module.
"""

from __future__ import annotations

import importlib
import pkgutil

from bertlab.reproduce.base import Reproduction

__all__ = ["names", "get"]

_NOT_POSTS = frozenset({"base"})


def names() -> list[str]:
    """The reproductions, one per module of this package, sorted."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name not in _NOT_POSTS
    )


def get(name: str) -> Reproduction:
    """The ``REPRODUCTION`` of module ``name``; KeyError for an unknown name."""
    if name not in names():
        raise KeyError(name)
    rep = importlib.import_module(f"{__name__}.{name}").REPRODUCTION
    if rep.name != name:
        raise ValueError(f"bertlab.reproduce.{name} declares the name {rep.name!r}")
    return rep
