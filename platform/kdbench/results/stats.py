"""Statistics of the leaderboard cells: summaries over seeds and paired differences between cells.

- `summarize`: n, mean, sample standard deviation (ddof 1) and the 95% Student-t interval of the
  mean, mean ± t_{0.975, n-1} · std / √n. No interval below two values (and no std below two).
- `paired`: the difference of two cells on the seeds both have (e.g. a distilled student minus the
  same student trained alone, seed by seed, so the seed's data order and initialisation cancel),
  summarised as above; `includes_zero` says whether its interval contains 0, i.e. whether the
  difference is not distinguishable from zero at the 95% level (None without an interval).

Pure Python and scipy's t quantile; linear in the number of values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import cache

from scipy import stats as _scipy

LEVEL = 0.95


@cache
def t_quantile(df: int, level: float = LEVEL) -> float:
    """The two-sided Student-t critical value t_{(1+level)/2, df}."""
    return float(_scipy.t.ppf((1 + level) / 2, df))


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Paired(Summary):
    includes_zero: bool | None = None  # the interval contains 0: not distinguishable from no difference


def summarize(values: Iterable[float]) -> Summary:
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = math.fsum(xs) / n
    if n < 2:
        return Summary(1, mean, None, None, None)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Paired:
    """a − b on the keys (seeds) both have with values; a Summary of the differences."""
    diffs = [a[k] - b[k] for k in sorted(a.keys() & b.keys()) if a[k] is not None and b[k] is not None]
    s = summarize(diffs)
    zero = None if s.ci_low is None else s.ci_low <= 0.0 <= s.ci_high
    return Paired(s.n, s.mean, s.std, s.ci_low, s.ci_high, zero)


SUMMARY_FIELDS = ["n", "mean", "std", "ci_low", "ci_high"]
PAIRED_FIELDS = [*SUMMARY_FIELDS, "includes_zero"]
