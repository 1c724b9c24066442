"""Reading a row's columns as the values EST's scripts take, failing the job on bad data.

`RowReader` wraps one row: every read names its column, records that the column
was read (so a test can prove no parameter column is silently ignored), and turns
a value that cannot be used into a `JobInputError` naming the column. The
converters below are shared by the job-type table (`efi_job_manager.catalogue.jobtypes`)
and the taxonomy filter builder.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

__all__ = [
    "JobInputError",
    "RowReader",
    "choice",
    "domain_family",
    "domain_region",
    "evalue",
    "fail",
    "flag",
    "fraction_of",
    "is_empty",
    "items",
    "metagenome_ids",
    "number_text",
    "percents",
    "plain_text",
    "residues",
    "search_method",
    "sequence_version",
    "title",
    "to_bool",
    "to_float",
    "to_int",
    "to_str",
    "whole",
]

T = TypeVar("T")


class JobInputError(ValueError):
    """The job cannot run because of its own data; the message names the column.

    Attributes:
        column: The column at fault, when there is one.

    """

    def __init__(self, message: str, *, column: str | None = None) -> None:
        """Keep the message and the column it names."""
        super().__init__(message)
        self.column = column


def fail(column: str, value: object, why: str) -> JobInputError:
    """Return the error for a column whose value cannot be used (value shown, shortened)."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return JobInputError(f"{column} = {shown}: {why}", column=column)


def is_empty(value: object) -> bool:
    """Return whether a column value counts as not given (None or blank text)."""
    return value is None or (isinstance(value, str) and not value.strip())


def to_int(column: str, value: object) -> int:
    """Return a whole number (a float must be integral; text must be digits)."""
    if isinstance(value, bool):
        raise fail(column, value, "expected a whole number, not a flag")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isfinite(f) and f.is_integer():
            return int(f)
        raise fail(column, value, "expected a whole number")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise fail(column, value, "expected a whole number")


def to_float(column: str, value: object) -> float:
    """Return a finite number."""
    if isinstance(value, bool):
        raise fail(column, value, "expected a number, not a flag")
    try:
        if isinstance(value, numbers.Real):
            f = float(value)
        elif isinstance(value, str):
            f = float(value.strip())
        else:
            raise fail(column, value, "expected a number")
    except (TypeError, ValueError, OverflowError):
        raise fail(column, value, "expected a number") from None
    if not math.isfinite(f):
        raise fail(column, value, "expected a finite number")
    return f


def flag(value: object) -> bool | None:
    """A flag from a boolean, 0/1 or the text true/false/1/0; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0"}:
        return value.strip().lower() in {"true", "1"}
    return None


def to_bool(column: str, value: object) -> bool:
    """Return a flag from a boolean, 0/1 or the text true/false/1/0."""
    result = flag(value)
    if result is None:
        raise fail(column, value, "expected true or false")
    return result


def to_str(column: str, value: object) -> str:
    """Return text (numbers are written as text; NUL bytes are refused)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise fail(column, value, "contains a NUL byte")
        return value
    if isinstance(value, bool):
        raise fail(column, value, "expected text, not a flag")
    if isinstance(value, numbers.Real):
        return str(value)
    raise fail(column, value, "expected text")


#: Characters EST passes through unquoted shell commands and SQL: a value read into
#: an option may hold none of them.
_SHELL_UNSAFE: Final = re.compile(r"[\x00-\x1f'\"`$\\;|&<>]")


def plain_text(column: str, value: object) -> str:
    """Return text that EST can pass through its command lines (no quotes, no control bytes)."""
    text = to_str(column, value).strip()
    if _SHELL_UNSAFE.search(text):
        raise fail(column, value, "may not hold quotes, backslashes, control characters or "
                                  "any of ` $ ; | & < >")
    return text


class RowReader:
    """One row's columns, read by name; every read is recorded in `read`.

    Attributes:
        job_type: The row's ``job_type``.
        read: The columns read so far (a test uses it to prove that every parameter
            column is read or declared unused).

    """

    def __init__(self, values: Mapping[str, Any], job_type: str) -> None:
        """Wrap the row's column values (``column name → value``)."""
        self._values = values
        self.job_type = job_type
        self.read: set[str] = set()

    def raw(self, column: str) -> Any:
        """Return a column's value as stored (None when the row has no such column)."""
        self.read.add(column)
        return self._values.get(column)

    def get(self, column: str, convert: Callable[[str, Any], T]) -> T | None:
        """Return a converted column value, or None when the column is empty."""
        value = self.raw(column)
        if is_empty(value):
            return None
        return convert(column, value)

    def require(self, column: str, convert: Callable[[str, Any], T], why: str) -> T:
        """Return a converted column value; an empty column fails the job with ``why``."""
        value = self.get(column, convert)
        if value is None:
            raise JobInputError(f"{column} is required for {self.job_type}: {why}",
                                column=column)
        return value

    def flag(self, column: str) -> bool:
        """Return a flag column (empty means false)."""
        return bool(self.get(column, to_bool))


# -- column values as EST option text ---------------------------------------------------------


def evalue(column: str, value: object) -> str:
    """Return an e-value from EFI-Web's exponent (5 means ``1e-5``)."""
    exponent = to_int(column, value)
    if exponent < 0:
        raise fail(column, value, "an e-value exponent must be 0 or more (5 means 1e-5)")
    return f"1e-{exponent}"


def number_text(value: float) -> str:
    """Return a number as option text (``87`` rather than ``87.0``)."""
    return str(int(value)) if value.is_integer() else repr(value)


def choice(table: Mapping[str, str], what: str) -> Callable[[str, object], str]:
    """Return a converter taking the keys of ``table`` (any case) to EST's spelling."""
    def convert(column: str, value: object) -> str:
        text = to_str(column, value).strip().lower()
        if text not in table:
            known = ", ".join(sorted(set(table.values())))
            raise fail(column, value, f"not a {what} (one of {known})")
        return table[text]
    return convert


#: EST's ``--sequence-version`` choices.
sequence_version = choice({"uniprot": "uniprot", "uniref90": "uniref90", "uniref50": "uniref50",
                           "uniref 90": "uniref90", "uniref 50": "uniref50"}, "sequence version")
#: EST's ``--domain-region`` choices (EFI-Web also says "central" for "domain").
domain_region = choice({"domain": "domain", "central": "domain", "n-terminal": "n-terminal",
                        "nterminal": "n-terminal", "c-terminal": "c-terminal",
                        "cterminal": "c-terminal"}, "domain region")
#: EST's ``--search-method`` choices.
search_method = choice({"blast": "blast", "diamond": "diamond"}, "search method")


def domain_family(column: str, value: object) -> str:
    """Return one Pfam family (EST trims accession imports to one family's domain)."""
    text = to_str(column, value).strip().upper()
    if not re.fullmatch(r"PF\d{5}", text):
        raise fail(column, value, "EST trims to the domain of one Pfam family (PF#####)")
    return text


def fraction_of(column: str, value: object) -> float:
    """Return a fraction from 0 to 1, from a fraction or a percent above 1 (EFI-Web's forms)."""
    number = to_float(column, value)
    if number < 0 or number > 100:
        raise fail(column, value, "expected a percent (above 1, up to 100) or a fraction (0 to 1)")
    return round(number / 100, 6) if number > 1 else number


def whole(low: int, high: int | None = None) -> Callable[[str, object], int]:
    """Return a converter to a whole number from ``low`` (to ``high``)."""
    def convert(column: str, value: object) -> int:
        n = to_int(column, value)
        if n < low or (high is not None and n > high):
            span = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise fail(column, value, f"must be {span}")
        return n
    return convert


def items(column: str, value: object) -> list[str]:
    """Return the items of a list written with commas, semicolons or spaces."""
    found = [i.strip() for i in re.split(r"[,;\s]+", to_str(column, value)) if i.strip()]
    if not found:
        raise fail(column, value, "an empty list")
    return found


def residues(column: str, value: object) -> str:
    """Return one-letter amino acid codes as EST's ``--residues`` text (``C,H``)."""
    codes = [i.upper() for i in items(column, value)]
    bad = [i for i in codes if not re.fullmatch(r"[A-Z]", i)]
    if bad:
        raise fail(column, value, f"not one-letter amino acid codes: {', '.join(bad)}")
    return ",".join(codes)


def percents(column: str, value: object) -> str:
    """Return percent identities (0 to 100) as EST's ``--pid-thresholds`` text."""
    numbers = [to_float(column, i) for i in items(column, value)]
    if any(n < 0 or n > 100 for n in numbers):
        raise fail(column, value, "percent identities go from 0 to 100")
    return ",".join(number_text(n) for n in numbers)


def metagenome_ids(column: str, value: object) -> str:
    """Return metagenome ids as EST's ``--metagenome-ids`` text (comma-separated)."""
    ids = items(column, value)
    bad = [i for i in ids if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", i)]
    if bad:
        raise fail(column, value, f"not metagenome ids: {', '.join(bad)}")
    return ",".join(dict.fromkeys(ids))


def title(column: str, value: object) -> str:
    """Return a job name the pipelines can quote (they put it in double quotes in a shell)."""
    return re.sub(r"[\x00-\x1f\"'`$\\]", "_", to_str(column, value)).strip()[:200]
