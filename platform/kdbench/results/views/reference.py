"""Published numbers beside the measured ones: the suite's reference CSV, kept in the store by `kdbench run`
(references/<suite>.csv, copied from the suite's `reference:` file). The one reader of that file.

Columns: the keys (`teacher`, `student`, `method`; `ta` for TA chains; an empty teacher is the student
trained alone), a number (`paper_acc` in percent, `paper_errors` a count) and `source`. Lookups return
`paper_acc` as a fraction, like every accuracy in the tables.
"""

from __future__ import annotations

import io

import pyarrow.csv as pacsv

from kdbench import paths
from kdbench.store import Store

PERCENT = {"paper_acc"}  # published in percent; the tables hold fractions


def reference_path(suite: str) -> str:
    """Where a run keeps the suite's table of published numbers, if it declares one."""
    return paths.reference(suite)


def reference_rows(store: Store, suite: str) -> list[dict]:
    """The CSV's rows as dicts of strings (empty cells as ''), [] when the suite has none."""
    data = store.read_bytes(reference_path(suite))
    if data is None:
        return []
    table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(strings_can_be_null=False,
                                                                                 auto_dict_encode=False))
    rows = table.to_pylist()
    return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]


def with_column(rows: list[dict], column: str) -> list[dict]:
    """The rows of a CSV that has `column` (a suite's CSV may hold another study's numbers)."""
    return [r for r in rows if column in r]


def lookup(rows: list[dict], value: str, **keys: str) -> tuple[float | None, str | None]:
    """(number in column `value`, source) of the first row whose columns equal `keys` (a column the CSV lacks
    counts as empty); (None, None) if none. `paper_acc` comes back as a fraction."""
    for r in rows:
        if r.get(value, "") != "" and all(r.get(k, "") == (v or "") for k, v in keys.items()):
            number = float(r[value])
            return (number / 100 if value in PERCENT else number), r.get("source") or None
    return None, None
