"""The settings engine: a mapping (a TOML table) → an attrs settings class, or every problem.

One cattrs `Converter` (``forbid_extra_keys``, detailed validation) with the value hooks
registered once: integers, numbers, booleans and strings refuse the wrong TOML type and
read text only when it came from the environment (`FromEnv`); tables and lists say so when
they are something else; ``Annotated`` rules (`Check`, `Convert`) read and check values.
`structure_settings` turns cattrs' exception groups into a `ConfigError` holding every
problem at once, each with its source, dotted key, value (secrets masked) and what was
expected, and "did you mean" for unknown keys. It imports neither SQLAlchemy nor the manager.
"""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from efi_job_manager.config.errors import ConfigError, Invalid, KeyPath, Problem
from efi_job_manager.config.masking import MASK, show
from efi_job_manager.config.values import (
    SECRET,
    Check,
    Convert,
    FromEnv,
    parse_env_value,
    relative_to,
)

__all__ = [
    "NOT_A_SETTING",
    "Hint",
    "describe",
    "documented_default",
    "expected_of",
    "setting_keys",
    "structure_settings",
]

T = TypeVar("T")

Hint = Callable[[KeyPath, Sequence[str], str | None], str | None]
"""``(unknown key, known keys, environment variable or None) → a hint, or None``."""

NOT_A_SETTING: Final[Mapping[str, Any]] = {"setting": False}
"""Field metadata for an attribute of a settings class that no file or variable sets."""

DEFAULT_WORDS: Final = "default_words"
"""The field metadata key `documented_default` sets."""

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_MAPPINGS: Final = (collections.abc.Mapping, collections.abc.MutableMapping, dict)
_SEQUENCES: Final = (collections.abc.Sequence, list, tuple)


def setting_keys(cls: type) -> list[str]:
    """The keys a settings class reads, in declaration order."""
    return [f.name for f in attrs.fields(cls) if f.init and f.metadata.get("setting", True)]


def documented_default(words: str) -> Mapping[str, Any]:
    """Field metadata: how the settings reference states a default that is computed.

    For a ``factory`` whose value depends on the machine (``sys.executable``, the home
    directory): ``attrs.field(factory=…, metadata=documented_default("…"))``.
    """
    return {DEFAULT_WORDS: words}


def describe(cls: type) -> dict[str, str]:
    """Each key of a settings class → what it takes, as messages say it."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {key: expected_of(hints[key]) for key in setting_keys(cls)}


def structure_settings(
    cls: type[T],
    data: Any,
    *,
    where: str = "settings",
    sources: Mapping[KeyPath, str] | None = None,
    base_dir: Path | None = None,
    hint: Hint | None = None,
) -> T:
    """Build the settings class ``cls`` from ``data``, or report every problem in it.

    Args:
        cls: An attrs class; its fields are the keys (fields marked `NOT_A_SETTING` are
            not), their types say how values are read (see `efi_job_manager.config.values`).
        data: The table (a mapping); not modified.
        where: How messages name the source of ``data`` (a file's path).
        sources: Key path → the environment variable that set it (or a table above it).
        base_dir: What relative `ResolvedPath` values of ``data`` are relative to.
        hint: Gives a special hint for an unknown key ("did you mean" otherwise).

    Returns:
        The settings.

    Raises:
        ConfigError: With one `Problem` per wrong, missing or unknown key.
    """
    try:
        with relative_to(base_dir):
            return _CONVERTER.structure(data, cls)
    except (BaseValidationError, Invalid) as exc:
        walker = _Walker(where, dict(sources or {}), hint)
        walker.walk(exc, ())
        raise ConfigError(*walker.problems) from None


# --------------------------------------------------------------------------- errors → problems


@attrs.define
class _Walker:
    """Turns cattrs' nested exception groups into problems at dotted keys."""

    where: str
    sources: dict[KeyPath, str]
    hint: Hint | None
    problems: list[Problem] = attrs.Factory(list)

    def source(self, key: KeyPath) -> str | None:
        for end in range(len(key), 0, -1):
            name = self.sources.get(key[:end])
            if name is not None:
                return name
        return None

    def add(self, key: KeyPath, **parts: Any) -> None:
        self.problems.append(Problem(key, where=self.source(key) or self.where, **parts))

    def walk(self, exc: BaseException, key: KeyPath) -> None:
        if isinstance(exc, ClassValidationError):
            with_notes, others = exc.group_exceptions()
            for sub, note in with_notes:
                self.walk(sub, (*key, note.name))
            for sub in others:
                if isinstance(sub, ForbiddenExtraKeysError):
                    self.unknown(key, sub)
                else:
                    self.walk(sub, key)
        elif isinstance(exc, IterableValidationError):
            with_index, others = exc.group_exceptions()
            for sub, index_note in with_index:
                self.walk(sub, (*key, index_note.index))
            for sub in others:
                self.walk(sub, key)
        elif isinstance(exc, ExceptionGroup):
            for sub in exc.exceptions:
                self.walk(sub, key)
        elif isinstance(exc, ConfigError):
            self.problems.extend(p.within(self.source(key) or self.where, key)
                                 for p in exc.problems)
        elif isinstance(exc, Invalid):
            at = key if exc.key is None else (*key, exc.key)
            if exc.missing:
                self.add(at, kind="missing", expected=exc.expected)
            else:
                name = next((k for k in reversed(at) if isinstance(k, str)), None)
                shown = exc.shown or show(exc.value, name)
                self.add(at, kind="invalid", value=shown, expected=exc.expected)
        elif isinstance(exc, KeyError):
            self.add(key, kind="missing")
        else:
            self.add(key, kind="note", text=str(exc) or type(exc).__name__)

    def unknown(self, key: KeyPath, exc: ForbiddenExtraKeysError) -> None:
        known = tuple(setting_keys(exc.cl))
        for name in sorted(exc.extra_fields, key=str):
            at = (*key, str(name))
            variable = self.source(at)
            special = self.hint(at, known, variable) if self.hint is not None else None
            self.add(at, kind="unknown", known=known, hint=special)


# --------------------------------------------------------------------------- hooks


def _integer(value: Any, _: Any) -> int:
    number = value
    if isinstance(value, FromEnv):
        try:
            number = int(value.strip())
        except ValueError:
            raise Invalid("an integer", value) from None
    if isinstance(number, bool) or not isinstance(number, int):
        raise Invalid("an integer", value)
    return int(number)


def _number(value: Any, _: Any) -> float:
    number = value
    if isinstance(value, FromEnv):
        try:
            number = float(value.strip())
        except ValueError:
            raise Invalid("a number", value) from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise Invalid("a number", value)
    if not math.isfinite(number):
        raise Invalid("a finite number", value)
    return float(number)


def _boolean(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, FromEnv):
        text = value.strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise Invalid("a boolean (true/false, yes/no, 1/0, on/off)", value)
    raise Invalid("a boolean (true or false)", value)


def _string(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("a string", value)
    return str(value)


def _table(value: Any, expected: str = "a table") -> Mapping[Any, Any]:
    table = parse_env_value(value) if isinstance(value, FromEnv) else value
    if not isinstance(table, Mapping):
        raise Invalid(expected, value)
    return table


def _is_annotated(t: Any) -> bool:
    return hasattr(t, "__metadata__") and typing.get_origin(t) is not None


def _is_optional(t: Any) -> bool:
    args = typing.get_args(t)
    return (typing.get_origin(t) in (typing.Union, types.UnionType)
            and len(args) == 2 and type(None) in args)


def _optional_hook(t: Any) -> Callable[[Any, Any], Any]:
    inner = next(arg for arg in typing.get_args(t) if arg is not type(None))
    handler = _CONVERTER.get_structure_hook(inner)

    def structure(value: Any, _: Any) -> Any:
        if value is None or (isinstance(value, FromEnv) and value == ""):
            return None
        return handler(value, inner)

    return structure


def _annotated_hook(t: Any) -> Callable[[Any, Any], Any]:
    """Read ``Annotated[base, rules…]``: by the `Convert` rule (else as ``base``), then checks.

    A failure of the base type says what the first rule expects.
    """
    base, *metadata = typing.get_args(t)
    rules = [m for m in metadata if isinstance(m, Check | Convert)]
    convert = next((r for r in rules if isinstance(r, Convert)), None)
    tests = [(r.expected, r.test) for r in rules if isinstance(r, Check) and r.test is not None]
    expected = rules[0].expected if rules else expected_of(base)
    secret = SECRET in metadata
    if convert is not None:
        read, own_words = convert.read, True
    else:
        handler = _CONVERTER.get_structure_hook(base)
        read, own_words = (lambda value: handler(value, base)), False

    def structure(value: Any, _: Any) -> Any:
        try:
            try:
                result = read(value)
            except Invalid:
                if own_words:
                    raise
                raise Invalid(expected, value) from None  # the base type's words: the rule's
            except (ValueError, TypeError):
                raise Invalid(expected, value) from None
            for words, test in tests:
                if not test(result):
                    raise Invalid(words, value)
        except Invalid as exc:
            if secret:
                exc.shown = MASK
            raise
        return result

    return structure


def _mapping_hook(t: Any) -> Callable[[Any, Any], Any]:
    args = typing.get_args(t)
    value_type = args[1] if len(args) == 2 else Any
    handler = _CONVERTER.get_structure_hook(value_type)

    def structure(value: Any, _: Any) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        errors: list[Exception] = []
        for key, item in _table(value).items():
            try:
                out[key] = handler(item, value_type)
            except Exception as exc:
                exc.add_note(IterableValidationNote(f"@ key {key!r}", key, value_type))
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {t!r}", errors, dict)
        return out

    return structure


def _sequence_hook(t: Any) -> Callable[[Any, Any], Any]:
    args = typing.get_args(t)
    item_type = args[0] if args else Any
    handler = _CONVERTER.get_structure_hook(item_type)
    as_tuple = typing.get_origin(t) is tuple

    def structure(value: Any, _: Any) -> Sequence[Any]:
        items = parse_env_value(value) if isinstance(value, FromEnv) else value
        if not isinstance(items, list | tuple):
            raise Invalid("a list", value)
        out: list[Any] = []
        errors: list[Exception] = []
        for index, item in enumerate(items):
            try:
                out.append(handler(item, item_type))
            except Exception as exc:
                exc.add_note(IterableValidationNote(f"@ index {index}", index, item_type))
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {t!r}", errors, list)
        return tuple(out) if as_tuple else out

    return structure


def _class_hook(cls: type) -> Callable[[Any, Any], Any]:
    options: dict[str, Any] = {f.name: override(omit=True) for f in attrs.fields(cls)
                               if f.name not in setting_keys(cls)}
    options.update(_cattrs_forbid_extra_keys=True, _cattrs_detailed_validation=True)
    build: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, _CONVERTER, **options)
    expected = f"a table (keys: {', '.join(setting_keys(cls))})"

    def structure(value: Any, _: Any) -> Any:
        return build(_table(value, expected), cls)

    return structure


def expected_of(t: Any) -> str:
    """What a value of type ``t`` must be, in words (as messages say it)."""
    if _is_annotated(t):
        base, *metadata = typing.get_args(t)
        rule = next((m for m in metadata if isinstance(m, Check | Convert)), None)
        return rule.expected if rule is not None else expected_of(base)
    if _is_optional(t):
        return expected_of(next(a for a in typing.get_args(t) if a is not type(None)))
    words = {int: "an integer", float: "a number", bool: "a boolean (true or false)",
             str: "a string"}
    if t in words:
        return words[t]
    if attrs.has(t):
        return f"a table (keys: {', '.join(setting_keys(t))})"
    origin = typing.get_origin(t)
    if origin in _MAPPINGS:
        return "a table"
    if origin in _SEQUENCES:
        return "a list"
    return str(t)


def _is_generic_of(origins: Iterable[Any]) -> Callable[[Any], bool]:
    kinds = tuple(origins)
    return lambda t: typing.get_origin(t) in kinds


_CONVERTER: Final = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
_CONVERTER.register_structure_hook(int, _integer)
_CONVERTER.register_structure_hook(float, _number)
_CONVERTER.register_structure_hook(bool, _boolean)
_CONVERTER.register_structure_hook(str, _string)
_CONVERTER.register_structure_hook_factory(attrs.has, _class_hook)
_CONVERTER.register_structure_hook_factory(_is_generic_of(_MAPPINGS), _mapping_hook)
_CONVERTER.register_structure_hook_factory(_is_generic_of(_SEQUENCES), _sequence_hook)
_CONVERTER.register_structure_hook_factory(_is_optional, _optional_hook)
_CONVERTER.register_structure_hook_factory(_is_annotated, _annotated_hook)
