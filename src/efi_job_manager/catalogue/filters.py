"""EST's sequence filters: the ``--filter`` entries and the user taxonomy filter file.

EST's ``filter_ids.pl`` reads each ``filter`` entry as ``key`` or ``key=value``
(``lib/EFI/Import/Config/Filter.pm``): ``fragments``, ``fraction=N``,
``family=PF…,IPR…``, ``predef-filter=NAME``, ``user-filter=PATH``,
``min_seq_length=N``, ``max_seq_length=N``. A user taxonomy filter is a JSON file
whose conditions EST pastes into SQL against EFI's ``taxonomy`` table, so a
condition's ``field`` must be one of that table's columns (`TAXONOMY_FIELDS`) and
its ``value`` may not hold a quote. EFI-Web stores a user's filter in ``taxSearch``
as that JSON object (EST issue #309). These helpers turn columns into entries and
refuse what EST would break on, naming the column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from efi_job_manager.catalogue.rowvalues import RowReader, fail, to_int, to_str

__all__ = [
    "PREDEFINED_TAXONOMY_FILTERS",
    "TAXONOMY_FIELDS",
    "TAXONOMY_FILTER_FILE",
    "families",
    "family_filter",
    "fraction_filter",
    "predefined_names",
    "taxonomy_filter",
]

#: Columns of EFI's ``taxonomy`` table (``efi_db_schema.sql``) a condition may name.
TAXONOMY_FIELDS: Final = ("domain", "kingdom", "phylum", "class", "tax_order", "family", "genus",
                          "species")
#: Older rank names and the column EST knows them by.
_FIELD_ALIASES: Final = {"superkingdom": "domain", "order": "tax_order"}

#: Names in EST's ``pipelines/shared/assets/predefined_taxonomy_filters.yml`` (the stored
#: version, with ``eukaroyta_no_fungi`` as spelled there, and ``eukaryota_no_fungi`` as EST
#: names it since its June 2026 hotfix). A site can replace the list
#: (``pipelines.predefined_taxonomy_filters``).
PREDEFINED_TAXONOMY_FILTERS: Final = (
    "archaea", "bacteria", "bacteria_fungi", "eukaroyta_no_fungi", "eukaryota",
    "eukaryota_no_fungi", "fungi", "viruses",
)

#: The user taxonomy filter written into the job directory.
TAXONOMY_FILTER_FILE: Final = "taxonomy_filter.json"

_FAMILY_RE: Final = re.compile(r"^(PF\d{5}|IPR\d{6}|CL\d{4})$")
_FILTER_FAMILY_RE: Final = re.compile(r"^(PF\d{5}|IPR\d{6})$")
_TAX_VALUE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()/+\[\]-]{0,199}$")
_PREDEF_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_MAX_FILTER_TEXT: Final = 65536


def _family_list(column: str, value: object, pattern: re.Pattern[str], what: str) -> str:
    text = to_str(column, value)
    fams = [f.strip().upper() for f in re.split(r"[,;\s]+", text) if f.strip()]
    if not fams:
        raise fail(column, value, "no family given")
    bad = [f for f in fams if not pattern.match(f)]
    if bad:
        raise fail(column, value, f"not {what}: {', '.join(bad)}")
    return ",".join(dict.fromkeys(fams))


def families(column: str, value: object) -> str:
    """Return EST's ``--families`` text: PF/IPR/CL accessions, upper case, comma, no space."""
    return _family_list(column, value, _FAMILY_RE,
                        "a Pfam (PF#####), InterPro (IPR######) or Pfam clan (CL####) accession")


def family_filter(column: str, value: object) -> str:
    """Return a ``family=…`` filter entry (EST's family filter keeps PF and IPR only)."""
    return "family=" + _family_list(column, value, _FILTER_FAMILY_RE,
                                    "a Pfam (PF#####) or InterPro (IPR######) accession")


def fraction_filter(column: str, value: object) -> str | None:
    """Return ``fraction=N`` for N > 1 (keep every Nth family sequence), None for 1."""
    n = to_int(column, value)
    if n < 1:
        raise fail(column, value, "a fraction keeps every Nth sequence: N must be 1 or more")
    return f"fraction={n}" if n > 1 else None


def taxonomy_filter(row: RowReader, *, predefined: Iterable[str]
                    ) -> tuple[str | None, str | None]:
    """Return ``(predefined filter name, user filter file text)`` for a row; either may be None.

    ``taxSearch`` (EFI-Web's stored filter object) becomes the user filter file, named
    by ``taxSearchName`` when set. ``taxSearchName`` alone must name one of EST's
    predefined filters (``predefined``).
    """
    search = row.raw("taxSearch")
    label = row.raw("taxSearchName")
    if search is not None and (not isinstance(search, str) or search.strip()):
        return None, _user_filter("taxSearch", search, label)
    if label is None or (isinstance(label, str) and not label.strip()):
        return None, None
    name = to_str("taxSearchName", label).strip()
    known = sorted(set(predefined))
    if name not in known:
        raise fail("taxSearchName", label,
                   f"without taxSearch conditions it must name one of EST's predefined taxonomy "
                   f"filters ({', '.join(known)})")
    return name, None


def _user_filter(column: str, value: object, label: object) -> str:
    text = to_str(column, value).strip()
    if len(text) > _MAX_FILTER_TEXT:
        raise fail(column, value, f"longer than {_MAX_FILTER_TEXT} characters")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(column, value, f"not a JSON taxonomy filter: {exc.msg}") from None
    except RecursionError:
        raise fail(column, value, "nested too deep to be a taxonomy filter") from None
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]  # the array form EST read before April 2026
    if not isinstance(parsed, dict) or not isinstance(parsed.get("conditions"), list):
        raise fail(column, value, "a taxonomy filter is an object with a list of conditions")
    operator = str(parsed.get("operator", "OR")).strip().upper()
    if operator not in ("AND", "OR"):
        raise fail(column, value, "operator must be AND or OR")
    conditions = [_condition(column, value, c) for c in parsed["conditions"]]
    if not conditions:
        raise fail(column, value, "no taxonomy condition given")
    out: dict[str, Any] = {}
    name = label if isinstance(label, str) and label.strip() else parsed.get("name")
    if isinstance(name, str) and name.strip():
        out["name"] = name.strip()
    out["operator"] = operator
    out["conditions"] = conditions
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def _condition(column: str, value: object, cond: object) -> dict[str, str]:
    if not isinstance(cond, Mapping):
        raise fail(column, value, "every condition is an object with a field and a value")
    field = cond.get("field")
    taxon = cond.get("value")
    if not isinstance(field, str):
        raise fail(column, value, "every condition needs a field")
    field = _FIELD_ALIASES.get(field.strip().lower(), field.strip().lower())
    if field not in TAXONOMY_FIELDS:
        raise fail(column, value, f"unknown taxonomy field {cond.get('field')!r} (EFI's "
                                  f"taxonomy table has {', '.join(TAXONOMY_FIELDS)})")
    if not isinstance(taxon, str) or not _TAX_VALUE_RE.match(taxon):
        raise fail(column, value, f"taxon {taxon!r} may hold letters, digits, spaces and "
                                  f". _ ( ) / + [ ] - only")
    out = {"field": field, "value": taxon}
    for name in ("negate", "exact"):
        flag = cond.get(name)
        if flag is None:
            continue
        # EST compares these with the strings "true"/"false"; a JSON boolean is ignored there
        if isinstance(flag, bool) or (isinstance(flag, str) and flag in ("true", "false")):
            out[name] = str(flag).lower()
        else:
            raise fail(column, value, f"{name} must be true or false")
    return out


def predefined_names(names: object, where: str) -> tuple[str, ...]:
    """Check a site's list of predefined filter names (a `ValueError` names ``where``)."""
    if not isinstance(names, list | tuple) or not names:
        raise ValueError(f"{where}: expected a non-empty list of filter names")
    for name in names:
        if not isinstance(name, str) or not _PREDEF_NAME_RE.match(name):
            raise ValueError(f"{where}: {name!r} is not a filter name (letters, digits, _)")
    return tuple(names)
