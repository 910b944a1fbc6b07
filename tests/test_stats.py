"""kdbench.results.stats against numpy/scipy computed independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from kdbench.results.stats import paired, summarize, t_quantile


@pytest.mark.parametrize("xs", [[0.81, 0.83, 0.8], [0.5, 0.7], [0.9, 0.91, 0.92, 0.905, 0.88]])
def test_summary_matches_numpy_and_scipy(xs):
    s = summarize(xs)
    a = np.array(xs)
    low, high = sps.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=sps.sem(a))
    assert (s.n, s.mean, s.std) == (len(xs), pytest.approx(a.mean()), pytest.approx(a.std(ddof=1)))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_summary_below_two_values_has_no_spread():
    assert summarize([]).mean is None and summarize([]).n == 0
    one = summarize([0.7, None])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_high) == (1, 0.7, None, None, None)


def test_paired_difference_matches_scipy_ttest_rel():
    a = {0: 0.85, 1: 0.86, 2: 0.84, 3: 0.9}  # seed 3 has no partner: left out of the pairs
    b = {0: 0.80, 1: 0.82, 2: 0.81, 4: 0.5}
    p = paired(a, b)
    x, y = np.array([0.85, 0.86, 0.84]), np.array([0.80, 0.82, 0.81])
    ci = sps.ttest_rel(x, y).confidence_interval(0.95)
    assert p.n == 3 and p.mean == pytest.approx((x - y).mean()) and p.std == pytest.approx((x - y).std(ddof=1))
    assert (p.ci_low, p.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert not ci.low <= 0 <= ci.high and p.includes_zero is False


def test_paired_marks_an_interval_that_includes_zero():
    p = paired({0: 0.80, 1: 0.83, 2: 0.81}, {0: 0.81, 1: 0.80, 2: 0.815})
    ci = sps.ttest_rel([0.80, 0.83, 0.81], [0.81, 0.80, 0.815]).confidence_interval(0.95)
    assert (p.ci_low, p.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert p.includes_zero is True
    assert paired({0: 0.8}, {0: 0.7}).includes_zero is None  # one pair: no interval, no verdict


def test_t_quantile_is_scipys():
    assert t_quantile(2) == pytest.approx(sps.t.ppf(0.975, 2)) == pytest.approx(4.302652729911275)
