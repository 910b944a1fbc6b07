"""Published numbers beside the measured ones: the suite's reference CSV, kept in the store by `kdbench run`
(references/<suite>.csv, copied from the suite's `reference:` file)."""

from __future__ import annotations

import io

import pyarrow.csv as pacsv

from kdbench.store import Store


def reference_rows(store: Store, suite: str) -> list[dict]:
    """The CSV's rows as dicts of strings (empty cells as ''), [] when the suite has none."""
    data = store.read_bytes(f"references/{suite}.csv")  # results.report.reference_path
    if data is None:
        return []
    table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(strings_can_be_null=False,
                                                                                 auto_dict_encode=False))
    rows = table.to_pylist()
    return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]


def lookup(rows: list[dict], value: str, **keys: str) -> tuple[float | None, str | None]:
    """(number in column `value`, source) of the first row whose columns equal `keys`; (None, None) if none."""
    for r in rows:
        if r.get(value, "") != "" and all(r.get(k, "") == (v or "") for k, v in keys.items()):
            return float(r[value]), r.get("source") or None
    return None, None
