"""Value rules of config keys: the range a number must lie in, or the words a key may take.

A rule names a key (or an ``fnmatch`` pattern: ``*dropout*``, ``callbacks.*.decay``) and is
checked on the composed config by :func:`bertlab.utils.hydra_utils.validate_config`, before
anything is read or written; a missing key or a null value is not checked. The rules of the
keys every run has (seed, trainer, optimizer, ...) are there; a DataModule declares the rules
of its own keys, relative to the ``data`` group, as ``VALUE_RULES`` (e.g.
:attr:`bertlab.data.base.CharDataModule.VALUE_RULES`).
"""

from __future__ import annotations

import fnmatch
import importlib
import math
from dataclasses import dataclass, replace
from typing import Any

from bertlab.utils.errors import ConfigError

__all__ = ["ValueRule", "check_range", "declared_rules"]


@dataclass(frozen=True)
class ValueRule:
    """``key`` must be (kind ``"int"``) an integer or (``"number"``) a finite number between
    ``low`` and ``high`` (``incl_low`` / ``incl_high``: the bound itself is allowed), or (kind
    ``"choice"``) one of ``choices``."""

    key: str
    kind: str = "int"
    low: float = -math.inf
    high: float = math.inf
    incl_low: bool = True
    incl_high: bool = True
    choices: tuple[Any, ...] = ()

    def matches(self, key: str) -> bool:
        return key == self.key or ("*" in self.key and fnmatch.fnmatchcase(key, self.key))

    def under(self, group: str) -> ValueRule:
        """The same rule for the key inside the config group ``group`` (``batch_size`` -> ``data.batch_size``)."""
        return replace(self, key=f"{group}.{self.key}")

    def check(self, key: str, value: Any) -> None:
        """A :class:`ConfigError` naming ``key`` unless ``value`` (not None) keeps the rule."""
        if self.kind == "choice":
            if value not in self.choices:
                words = " | ".join(dict.fromkeys(map(str, self.choices)))
                raise ConfigError(key, f"must be one of {words}, got {value!r}")
            return
        check_range(key, value, self.kind, self.low, self.high, self.incl_low, self.incl_high)


def check_range(
    key: str, value: Any, kind: str, low: float, high: float, incl_low: bool = True, incl_high: bool = True
) -> None:
    """A :class:`ConfigError` naming ``key`` unless ``value`` is a finite number (an integer for
    kind "int") between ``low`` and ``high``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind == "int" and not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())))
    ):
        raise ConfigError(key, f"expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value!r}")
    lo_ok = value >= low if incl_low else value > low
    hi_ok = value <= high if incl_high else value < high
    if not lo_ok or not hi_ok:
        lo = f"{'>=' if incl_low else '>'} {low:g}"
        rng = lo if high == math.inf else f"{lo} and {'<=' if incl_high else '<'} {high:.10g}"
        raise ConfigError(key, f"must be {rng}, got {value!r}")


def declared_rules(target: Any, group: str) -> tuple[ValueRule, ...]:
    """The ``VALUE_RULES`` the class ``target`` (a ``_target_`` path) declares, under ``group``;
    none when it declares none or cannot be imported (instantiating it reports that)."""
    if not isinstance(target, str) or "." not in target:
        return ()
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return ()
    rules = getattr(cls, "VALUE_RULES", ()) if isinstance(cls, type) else ()
    return tuple(rule.under(group) for rule in rules if isinstance(rule, ValueRule))
