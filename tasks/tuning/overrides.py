"""Search-space overrides from the command line or a YAML/JSON file.

Text syntax, one parameter per item (``NAME=SPEC``)::

    lr=1e-3:0.3:log                 log-uniform between 0.001 and 0.3
    momentum=0.5:0.99               uniform
    weight_decay=1e-6:1e-2:log:zero=0.25   0 with probability 0.25, else log-uniform
    hidden=100:800:log              integer parameters draw integers
    batch_size=64,128,256           one of these values
    hidden=300                      fixed
    augment=none,shift              an extra categorical parameter, passed to the trial

In a file (or a parsed ``dict``) a value is either such a string, a number/boolean (fixed),
a list (one of its values), or a mapping ``{low, high, log, zero}`` / ``{values: [...]}``.
A list is always a set of choices: write a range as ``"0.01:0.3"`` or ``{low: 0.01, high: 0.3}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import SearchSpaceError
from tasks.tuning.space import DEFAULT_SPACE, PARAMETERS, Choice, Range, SearchSpace, Spec, Value

__all__ = ["build_space", "load_space_file", "parse_overrides", "parse_value"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_RANGE_KEYS = {"low", "high", "log", "int", "zero"}


def build_space(
    overrides: Mapping[str, Any] | None = None, defaults: Mapping[str, Spec] | None = None
) -> SearchSpace:
    """``defaults`` (:data:`~tasks.tuning.space.DEFAULT_SPACE` if None) with ``overrides``
    (name -> :class:`Range`, :class:`Choice` or a raw value, see the module doc) applied.

    Raises
    ------
    SearchSpaceError
        Naming the parameter, if a value cannot be parsed or its range is impossible.
    """
    specs: dict[str, Spec] = dict(DEFAULT_SPACE if defaults is None else defaults)
    for name, raw in (overrides or {}).items():
        specs[name] = parse_value(name, raw)
    return SearchSpace(specs)


def parse_overrides(items: Iterable[str]) -> dict[str, Spec]:
    """Parse ``NAME=SPEC`` items (repeated ``--space`` options) into validated specs.

    Raises
    ------
    SearchSpaceError
        If an item has no ``=``, names a parameter twice, or its spec is invalid.
    """
    specs: dict[str, Spec] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SearchSpaceError(
                f"search override {item!r} must look like NAME=SPEC, e.g. lr=1e-3:0.3:log"
            )
        if name in specs:
            raise SearchSpaceError(f"search parameter {name!r} is overridden twice")
        specs[name] = parse_value(name, text)
    return specs


def load_space_file(path: str | Path) -> dict[str, Spec]:
    """Read overrides from a ``.json``, ``.yaml`` or ``.yml`` file holding a mapping.

    Raises
    ------
    SearchSpaceError
        Naming the file (and the parameter), if it is unreadable, not a mapping or invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SearchSpaceError(f"search space file {path}: cannot read it ({exc})") from exc
    if not isinstance(data, dict):
        raise SearchSpaceError(f"search space file {path}: must hold a mapping NAME: SPEC")
    try:
        return {str(name): parse_value(str(name), raw) for name, raw in data.items()}
    except SearchSpaceError as exc:
        raise SearchSpaceError(f"search space file {path}: {exc}") from exc


def parse_value(name: str, raw: Any) -> Spec:
    """One parameter's spec from a string, number, list, mapping or spec object (validated).

    Raises
    ------
    SearchSpaceError
        Naming ``name``, if ``raw`` cannot be parsed or describes an impossible range.
    """
    if isinstance(raw, Range | Choice):
        spec: Spec = raw
    elif isinstance(raw, str):
        spec = _parse_text(name, raw)
    elif isinstance(raw, bool | int | float):
        spec = Choice((_coerce(name, raw),))
    elif isinstance(raw, list | tuple):
        spec = Choice(tuple(_coerce(name, value) for value in raw))
    elif isinstance(raw, Mapping):
        spec = _parse_mapping(name, raw)
    else:
        raise SearchSpaceError(
            f"search parameter {name!r}: cannot use {raw!r} as a range or values"
        )
    SearchSpace({name: spec})  # validates
    return spec


def _parse_text(name: str, text: str) -> Spec:
    text = text.strip()
    if not text:
        raise SearchSpaceError(f"search parameter {name!r}: empty spec")
    if ":" in text:
        low, high, *options = text.split(":")
        log, zero = False, 0.0
        for option in options:
            key, _, value = option.strip().partition("=")
            if key == "log" and not value:
                log = True
            elif key in ("lin", "int") and not value:
                pass
            elif key == "zero" and value:
                zero = _number(name, value)
            else:
                raise SearchSpaceError(
                    f"search parameter {name!r}: unknown range option {option!r} "
                    "(allowed: log, lin, int, zero=P)"
                )
        return _range(name, _number(name, low), _number(name, high), log=log, zero=zero)
    return Choice(tuple(_coerce(name, item.strip()) for item in text.split(",")))


def _parse_mapping(name: str, raw: Mapping[str, Any]) -> Spec:
    keys = set(raw)
    if keys in ({"values"}, {"choices"}):
        values = raw.get("values", raw.get("choices"))
        if not isinstance(values, list | tuple):
            raise SearchSpaceError(f"search parameter {name!r}: 'values' must be a list")
        return Choice(tuple(_coerce(name, value) for value in values))
    if not {"low", "high"} <= keys <= _RANGE_KEYS:
        raise SearchSpaceError(
            f"search parameter {name!r}: a mapping needs 'low' and 'high' (optional 'log', "
            f"'zero') or just 'values', got keys {sorted(map(str, keys))}"
        )
    low, high = (_number(name, raw[key]) for key in ("low", "high"))
    return _range(
        name, low, high, log=bool(raw.get("log", False)), zero=_number(name, raw.get("zero", 0))
    )


def _range(name: str, low: float, high: float, *, log: bool, zero: float) -> Range:
    param = PARAMETERS.get(name)
    integer = param is not None and param.kind is int
    if integer and (low != int(low) or high != int(high)):
        raise SearchSpaceError(f"search parameter {name!r} is an integer: bounds {low:g}:{high:g}")
    return Range(low, high, log=log, integer=integer, zero=zero)


def _number(name: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise SearchSpaceError(f"search parameter {name!r}: {raw!r} is not a number")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise SearchSpaceError(f"search parameter {name!r}: {raw!r} is not a number") from None


def _coerce(name: str, raw: Any) -> Value:
    """A value in the type of parameter ``name`` (strings are converted; extras stay as given)."""
    param = PARAMETERS.get(name)
    if not isinstance(raw, str) or param is None or param.kind is str:
        if isinstance(raw, str) and not raw:
            raise SearchSpaceError(f"search parameter {name!r}: empty value")
        return raw
    text = raw.strip().lower()
    if param.kind is bool:
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise SearchSpaceError(f"search parameter {name!r}: {raw!r} is not true/false")
    number = _number(name, text)
    return int(number) if param.kind is int and number == int(number) else number
