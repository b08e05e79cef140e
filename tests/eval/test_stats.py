import numpy as np
import pytest

from vlaworks.eval.stats import wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (8, 10, 0.4902, 0.9433),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_bounds_solve_the_score_equation():
    # The Wilson bounds are the p with |k/n - p| = z * sqrt(p (1 - p) / n).
    k, n, z = 7, 23, 1.959963984540054
    lo, hi = wilson_interval(k, n)
    roots = np.sort(np.roots([1 + z * z / n, -(2 * k / n + z * z / n), (k / n) ** 2]))
    assert (lo, hi) == pytest.approx(tuple(roots), abs=1e-9)


def test_wilson_wider_at_higher_confidence_and_empty_n():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo90, hi90 = wilson_interval(8, 10, 0.90)
    lo95, hi95 = wilson_interval(8, 10, 0.95)
    assert lo95 < lo90 < 0.8 < hi90 < hi95


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 10, confidence=95)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 33, 100, 1000])
def test_wilson_bounds_bracket_the_observed_rate_exactly_at_the_ends(n):
    assert wilson_interval(0, n)[0] == 0.0
    assert wilson_interval(n, n)[1] == 1.0
    for k in range(0, n + 1, max(1, n // 7)):
        lo, hi = wilson_interval(k, n)
        assert lo <= k / n <= hi
