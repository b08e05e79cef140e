"""Success-rate statistics: the Wilson score interval for a binomial proportion.

Why Wilson and not the normal ("Wald") interval: closed-loop evaluations have few
episodes and success rates near 0 or 1, where the Wald interval collapses to zero width
or leaves [0, 1]; the Wilson interval stays inside [0, 1] and keeps its coverage.
"""

from __future__ import annotations

import math

from scipy.stats import norm


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Return the (low, high) Wilson score interval of ``successes`` out of ``n`` trials.

    ``n == 0`` gives the uninformative interval (0, 1).
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n; got successes={successes}, n={n}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}.")
    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    # Clamp so rounding never puts a bound on the wrong side of the observed rate (exact 0 / 1 at the ends).
    return min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)
