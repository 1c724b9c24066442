"""The settings reference: each key of a settings class, what it takes, its default, its meaning.

Derived from the classes alone, so that the reference cannot disagree with them
(``docs/settings.md`` is written from it by ``scripts/settings_doc.py``):

* the key: its dotted path; a table of tables by name has a placeholder (``<name>``);
* what it takes: as the engine's messages say it (`expected_of`);
* its default: as TOML, written as an operator would write it (`Convert.write`: durations
  as ``"30s"``); ``required``, ``not set``, or the words of `documented_default`;
* its meaning: its entry under ``Attributes:`` in the docstring of its class (or of the base
  class that declares it): one source for the API documentation and the reference.

A field whose type is a settings class (``[manager]``), or a table of them by name
(``[destinations.<name>]``), is a `Table` of its own: the field's meaning (its line in the
class holding it) says what the table is, its class's docstring after the summary line
says more.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import re
import types
import typing
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Final

import attrs

from efi_job_manager.config.engine import DEFAULT_WORDS, expected_of, setting_keys
from efi_job_manager.config.values import Convert

__all__ = ["Key", "Table", "UndocumentedError", "about", "meanings", "tables", "toml_document",
           "toml_key", "toml_value"]

_SECTION: Final = re.compile(r"^(Attributes|Args|Arguments|Returns|Raises|Yields|Examples?|"
                             r"Notes?|Methods):\s*$")
_ENTRY: Final = re.compile(r"^(\w+)(?: \([^)]*\))?:\s*(.*)$")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_MAPPINGS: Final = (collections.abc.Mapping, collections.abc.MutableMapping, dict)
_SEQUENCES: Final = (collections.abc.Sequence, list, tuple)


class UndocumentedError(ValueError):
    """A key of a settings class has no entry under ``Attributes:`` in its docstring."""


@attrs.frozen
class Key:
    """One key of the reference.

    Attributes:
        key: The dotted key (``manager.interval``, ``destinations.<name>.settings.host``).
        takes: What it takes, as messages say it.
        default: Its default: a TOML value if `literal`, else words (``required``).
        literal: Whether `default` is a TOML value.
        meaning: What it means, from the docstring of its class.
    """

    key: str
    takes: str
    default: str
    literal: bool
    meaning: str


@attrs.frozen
class Table:
    """The keys of one settings class, at a dotted path.

    Attributes:
        key: The table's dotted path: ``""`` for the root, ``destinations.<name>``…
        cls: The settings class.
        field: The key of the field that holds the table (its meaning and default); ``None``
            for the root.
        about: What the class's docstring says beyond its summary line, before its sections.
        keys: The keys that are not tables, in declaration order.
    """

    key: str
    cls: type
    field: Key | None
    about: str
    keys: tuple[Key, ...]


def tables(cls: type, key: str = "", field: Key | None = None) -> list[Table]:
    """The table of ``cls`` at ``key``, then the tables within it, depth first.

    Raises:
        UndocumentedError: A key (named) has no meaning in its class's docstring.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    known = meanings(cls)
    rows: list[Key] = []
    nested: list[Table] = []
    for attribute in attrs.fields(cls):
        if attribute.name not in setting_keys(cls):
            continue
        path = f"{key}.{attribute.name}" if key else attribute.name
        meaning = known.get(attribute.name, "")
        if not meaning:
            raise UndocumentedError(f"{path}: {cls.__qualname__}.{attribute.name} has no meaning; "
                                    "say it under Attributes: in the docstring of "
                                    f"{cls.__qualname__} (or of the base class declaring it)")
        hint = hints[attribute.name]
        row = Key(path, _takes(hint), *_default(attribute, hint), meaning)
        inner, by_name = _table_class(hint)
        if inner is None:
            rows.append(row)
        elif by_name:
            placeholder = "<name>" if "<name>" not in path else f"<{attribute.name.rstrip('s')}>"
            nested.extend(tables(inner, f"{path}.{placeholder}", row))
        else:
            nested.extend(tables(inner, path, row))
    return [Table(key, cls, field, about(cls), tuple(rows)), *nested]


def meanings(cls: type) -> dict[str, str]:
    """Each entry under ``Attributes:`` in the docstrings of ``cls`` and its bases, as one line.

    A class's own entry wins over a base class's.
    """
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        found.update(_attributes(klass.__dict__.get("__doc__") or ""))
    return found


def about(cls: type) -> str:
    """The paragraphs of ``cls``'s docstring after its summary, before its first section."""
    lines = inspect.cleandoc(cls.__dict__.get("__doc__") or "").splitlines()
    end = next((i for i, line in enumerate(lines) if _SECTION.match(line)), len(lines))
    text = "\n".join(lines[:end]).strip()
    _, _, body = text.partition("\n\n")
    return body.strip()


def toml_value(value: Any) -> str:
    """``value`` as TOML (inline tables and arrays); an attrs instance as its keys set.

    Raises:
        TypeError: A value TOML cannot hold.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | PurePath):
        return json.dumps(str(value), ensure_ascii=False)
    if attrs.has(type(value)):
        value = _set_keys(value)
    if isinstance(value, Mapping):
        items = [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml_document(table: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[str]:
    """A nested mapping as the lines of a TOML file: plain keys first, then ``[tables]``.

    None values are left out (TOML has no null).
    """
    plain = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    subtables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    lines = []
    if path and (plain or not subtables):
        lines.append(f"\n[{'.'.join(toml_key(p) for p in path)}]")
    lines += [f"{toml_key(key)} = {toml_value(value)}"
              for key, value in sorted(plain.items()) if value is not None]
    for key, value in sorted(subtables.items()):
        lines += toml_document(value, (*path, key))
    return lines


# --------------------------------------------------------------------------- helpers


def _attributes(doc: str) -> dict[str, str]:
    """The ``Attributes:`` entries of a Google-style docstring, each joined into one line."""
    lines = inspect.cleandoc(doc).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Attributes:"), None)
    if start is None:
        return {}
    indent = len(lines[start]) - len(lines[start].lstrip())
    entries: dict[str, list[str]] = {}
    entry_indent: int | None = None
    name = ""
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth <= indent:
            break
        match = _ENTRY.match(line.strip())
        if match and (entry_indent is None or depth == entry_indent):
            entry_indent, name = depth, match.group(1)
            entries[name] = [match.group(2)]
        elif name:
            entries[name].append(line.strip())
    return {key: " ".join(words).strip() for key, words in entries.items()}


def _unwrap(t: Any) -> tuple[Any, list[Any]]:
    """``t`` without ``Optional`` and ``Annotated``, and the ``Annotated`` metadata."""
    metadata: list[Any] = []
    while True:
        args = typing.get_args(t)
        if hasattr(t, "__metadata__"):
            t, metadata = args[0], [*metadata, *args[1:]]
        elif (typing.get_origin(t) in (typing.Union, types.UnionType) and len(args) == 2
              and type(None) in args):
            t = next(arg for arg in args if arg is not type(None))
        else:
            return t, metadata


def _table_class(t: Any) -> tuple[type | None, bool]:
    """The settings class of a table field, and whether it is a table of them by name."""
    base, _ = _unwrap(t)
    if attrs.has(base):
        return base, False
    args = typing.get_args(base)
    if typing.get_origin(base) in _MAPPINGS and len(args) == 2 and attrs.has(args[1]):
        return args[1], True
    return None, False


def _takes(t: Any) -> str:
    """What a key of type ``t`` takes; a table's or list's items said when no rule says it."""
    words = expected_of(t)
    base, metadata = _unwrap(t)
    if metadata:
        return words
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in _MAPPINGS and len(args) == 2 and args[1] is not Any:
        return f"{words}; each value: {expected_of(args[1])}"
    if origin in _SEQUENCES and args and args[0] is not Any:
        return f"{words}; each item: {expected_of(args[0])}"
    return words


def _default(attribute: attrs.Attribute[Any], t: Any) -> tuple[str, bool]:
    """A field's default: (TOML, True), or (words, False)."""
    if DEFAULT_WORDS in attribute.metadata:
        return str(attribute.metadata[DEFAULT_WORDS]), False
    value = _default_value(attribute)
    if value is attrs.NOTHING:
        return "required", False
    if value is None:
        return "not set", False
    _, metadata = _unwrap(t)
    write = next((m.write for m in metadata if isinstance(m, Convert) and m.write), None)
    return toml_value(write(value) if write is not None else value), True


def _default_value(attribute: attrs.Attribute[Any]) -> Any:
    default: Any = attribute.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # a class at run time
        if default.takes_self:
            raise TypeError(f"{attribute.name}: a default computed from the instance: "
                            "state it with documented_default")
        return default.factory()
    return default


def _set_keys(instance: Any) -> dict[str, Any]:
    """An attrs instance's keys whose values are not the defaults."""
    cls = type(instance)
    keys = set(setting_keys(cls))
    return {f.name: getattr(instance, f.name) for f in attrs.fields(cls)
            if f.name in keys and getattr(instance, f.name) != _default_value(f)}


def toml_key(key: Any) -> str:
    """``key`` as a TOML key: bare when it can be, else quoted."""
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else json.dumps(text, ensure_ascii=False)
