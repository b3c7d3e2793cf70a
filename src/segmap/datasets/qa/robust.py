"""Outliers by robust z-score (Iglewicz and Hoaglin's modified z-score).

``z = 0.6745 (x - median) / MAD``, MAD being the median absolute deviation from the
median; ``|z| > 3.5`` is an outlier. When more than half the values are equal the MAD is
0, and the mean absolute deviation stands in for it (``z = (x - median) / (1.253314
MeanAD)``, the consistency constant for a normal distribution); when that is 0 too,
every value is the median and none is an outlier. Fewer than three values flag nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

THRESHOLD = 3.5
MIN_VALUES = 3
_MAD_SCALE = 0.6745
_MEAN_AD_SCALE = 1.253314


def robust_z(values: Sequence[float]) -> list[float]:
    """The robust z-score of each value (0.0 for all when they cannot be scored)."""
    x = np.asarray(values, dtype=float)
    if x.size < MIN_VALUES:
        return [0.0] * int(x.size)
    median = float(np.median(x))
    deviation = np.abs(x - median)
    mad = float(np.median(deviation))
    if mad > 0:
        z = _MAD_SCALE * (x - median) / mad
    else:
        mean_ad = float(np.mean(deviation))
        if mean_ad == 0:
            return [0.0] * int(x.size)
        z = (x - median) / (_MEAN_AD_SCALE * mean_ad)
    return [float(v) for v in z]


def is_outlier(z: float) -> bool:
    """Whether a robust z-score marks an outlier."""
    return abs(z) > THRESHOLD
