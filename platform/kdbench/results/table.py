"""`open_results(store)`: the results store as a table you can query with pandas, Arrow or SQL."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa

from kdbench.store import Store

from .store import read_plan, read_results

_DB = duckdb.connect()


class QueryError(ValueError):
    pass


class ResultsTable:
    """Every result row in a store; `.sql()` sees the views `results` and `plans` (latest per suite)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._results: pa.Table | None = None
        self._plans: pa.Table | None = None

    def to_arrow(self) -> pa.Table:
        if self._results is None:
            self._results = read_results(self.store)
        return self._results

    def plans(self) -> pa.Table:
        if self._plans is None:
            self._plans = read_plan(self.store)
        return self._plans

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def __len__(self) -> int:
        return self.to_arrow().num_rows

    def sql(self, query: str) -> pa.Table:
        """Run DuckDB SQL over the views `results` and `plans`; returns an Arrow table."""
        con = _DB.cursor()  # a cursor of one in-memory database: a new connection costs ~20 ms
        con.register("results", self.to_arrow())
        con.register("plans", self.plans())
        try:
            return con.sql(query).to_arrow_table()
        except duckdb.Error as e:
            raise QueryError(str(e).strip()) from None
        except AttributeError:  # a statement with no result set (e.g. SET)
            return pa.table({})
        finally:
            con.close()


def open_results(store: str | os.PathLike | Store = "kdbench-store") -> ResultsTable:
    return ResultsTable(store if isinstance(store, Store) else Store(store))
