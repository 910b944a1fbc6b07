"""`open_results(store)`: the results store as a table you can query with pandas, Arrow or SQL."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa

from kdbench.store import Store

from .store import read_plan, read_results

# Queries see the two views and nothing else: the store's rows are read by Python and handed over, so the
# database needs no file or network access at all — no COPY … TO, ATTACH, read_csv('/etc/…'), no extension
# installed or loaded (INSTALL httpfs would reach the network), and the settings locked so SQL cannot undo it.
_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
           "autoload_known_extensions": False, "memory_limit": "4GB", "lock_configuration": True}
MAX_ROWS = 10_000_000  # a query's result is held in memory (and printed): beyond this, ask for a LIMIT
_DB = None


def _db():
    global _DB
    if _DB is None:
        _DB = duckdb.connect(config=_CONFIG)
    return _DB


class QueryError(ValueError):
    pass


# The rows of each suite, right by construction: a suite's latest plan lists its jobs, so a job two suites share
# is a row of each, under each suite's own names. (`results.suite` names only the suite whose run wrote it.)
SUITE_RESULTS = """
select p.suite, p.teacher, p.student, p.chain, p.method_params,
       r.* exclude (suite, teacher, student, chain, method_params)
from plans p join results r using (job_id)
"""


class ResultsTable:
    """Every result row in a store; `.sql()` sees the views `results` (a row per job), `plans` (latest per
    suite) and `suite_results` (a row per suite and job: the rows of suite X are `where suite = 'X'`)."""

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

    def of_suite(self, suite: str) -> pa.Table:
        """Every row of `suite`'s latest plan that has a result (jobs it shares with other suites included),
        named as that suite names them."""
        return self.sql("select * from suite_results where suite = $suite", {"suite": suite})

    def sql(self, query: str, params: dict | None = None) -> pa.Table:
        """Run DuckDB SQL over the views `results`, `plans` and `suite_results`; returns an Arrow table."""
        con = _db().cursor()  # a cursor of one in-memory database: a new connection costs ~20 ms
        con.register("results", self.to_arrow())
        con.register("plans", self.plans())
        try:
            con.execute(f"create or replace temp view suite_results as {SUITE_RESULTS}")
            relation = con.sql(query, params=params)
            if relation is None:  # a statement with no result set (e.g. SET)
                return pa.table({})
            reader = relation.to_arrow_reader(100_000)
            batches, rows = [], 0
            for batch in reader:
                rows += batch.num_rows
                if rows > MAX_ROWS:
                    raise QueryError(f"the result has more than {MAX_ROWS:,} rows: add a LIMIT")
                batches.append(batch)
            return pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.Error as e:  # DuckDB's message is several lines (the query, a caret): keep the first
            raise QueryError((str(e).strip().splitlines() or [type(e).__name__])[0]) from None
        finally:
            con.close()


def open_results(store: str | os.PathLike | Store = "kdbench-store") -> ResultsTable:
    return ResultsTable(store if isinstance(store, Store) else Store(store))
