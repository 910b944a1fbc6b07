"""Text records from local files: plain text, fastText-labelled lines, TSV (GLUE), JSONL, Parquet and a Hugging
Face `datasets` folder written by `save_to_disk`.

A record is a dict of strings; `read_records` returns them in file order. Formats:

- `text`: one record per non-empty line, {"text": line} (gensim's `lee_background.cor`: one document a line);
- `fasttext`: `__label__<name> text` per line, {"label": name, "text": text} (gensim's `pang_lee_polarity.cor`);
- `tsv`: a header line, then tab-separated fields, no quoting (GLUE's train.tsv / dev.tsv);
- `jsonl`: one JSON object per line;
- `parquet`: a Parquet file, read with pyarrow;
- `hf_disk`: a folder from `datasets.Dataset.save_to_disk` (its `data-*.arrow` files are Arrow IPC streams): read
  with pyarrow alone, the `datasets` library is not needed (nor installed here). A `DatasetDict` folder (one
  subfolder per split) is refused with the split folders to name instead.

A `root` of the form `package:<name>` is the folder of an installed package (found without importing it), so a
suite can read a corpus shipped inside a wheel: `package:gensim/test/test_data`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Literal

Format = Literal["text", "fasttext", "tsv", "jsonl", "parquet", "hf_disk"]
FORMATS: tuple[str, ...] = ("text", "fasttext", "tsv", "jsonl", "parquet", "hf_disk")


def resolve(root: str, file: str) -> Path:
    """The path of `file` under `root`; `package:<pkg>[/sub/dir]` roots are resolved in the installed package."""
    if root.startswith("package:"):
        pkg, _, sub = root[len("package:"):].partition("/")
        spec = importlib.util.find_spec(pkg)  # a top-level package: found, not imported
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"root {root!r}: the package {pkg!r} is not installed")
        base = Path(next(iter(spec.submodule_search_locations))) / sub
    else:
        base = Path(os.path.expandvars(os.path.expanduser(root)))  # e.g. $KDBENCH_DATA_ROOT/glue/CoLA
    path = base / file
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    return path


def content_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in name order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def read_records(path: Path, fmt: Format, encoding: str = "utf-8",
                 columns: list[str] | None = None) -> list[dict[str, str]]:
    """`columns`: a TSV without a header line (GLUE's CoLA) has these fields."""
    if fmt == "text":
        return [{"text": line.strip()} for line in _lines(path, encoding) if line.strip()]
    if fmt == "fasttext":
        return [_fasttext(line, path) for line in _lines(path, encoding) if line.strip()]
    if fmt == "tsv":
        lines = [line.rstrip("\n").rstrip("\r") for line in _lines(path, encoding)]
        header, first = (lines[0].split("\t"), 2) if columns is None else (list(columns), 1)
        rows = [line.split("\t") for line in lines[first - 1:] if line]
        bad = next((i for i, r in enumerate(rows, first) if len(r) != len(header)), None)
        if bad is not None:
            raise ValueError(f"{path}:{bad}: {len(rows[bad - first])} fields, the header has {len(header)}")
        return [dict(zip(header, r, strict=True)) for r in rows]
    if fmt == "jsonl":
        return [_str_values(json.loads(line)) for line in _lines(path, encoding) if line.strip()]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return [_str_values(r) for r in pq.read_table(path).to_pylist()]
    if fmt == "hf_disk":
        return _hf_disk(path)
    raise ValueError(f"unknown text format {fmt!r} (one of {', '.join(FORMATS)})")


def _lines(path: Path, encoding: str) -> list[str]:
    with open(path, encoding=encoding, newline="") as fh:
        return fh.read().splitlines()


def _fasttext(line: str, path: Path) -> dict[str, str]:
    label, _, text = line.strip().partition(" ")
    if not label.startswith("__label__"):
        raise ValueError(f"{path}: a fastText line starts with __label__<name>, got {line[:40]!r}")
    return {"label": label[len("__label__"):], "text": text.strip()}


def _str_values(record: dict) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in record.items()}


def _hf_disk(path: Path) -> list[dict[str, str]]:
    import pyarrow as pa

    shards = sorted(path.glob("data-*.arrow"))
    if not shards:
        splits = sorted(p.name for p in path.iterdir() if p.is_dir() and any(p.glob("data-*.arrow")))
        hint = f"; it holds the splits {', '.join(splits)}: name one as the file" if splits else ""
        raise ValueError(f"{path} is not a save_to_disk dataset folder (no data-*.arrow){hint}")
    rows: list[dict[str, str]] = []
    for shard in shards:
        with pa.memory_map(str(shard)) as source:
            rows += [_str_values(r) for r in pa.ipc.open_stream(source).read_all().to_pylist()]
    return rows
