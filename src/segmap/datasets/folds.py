"""Cross-validation folds grouped by subject, seeded and reproducible.

Every case of one subject (patient) goes into the same fold, so no patient is ever in
training and validation at once. Subjects are shuffled with NumPy's PCG64 generator
seeded with ``seed``, then dealt, largest first, to the fold holding the fewest cases so
far (ties to the lower fold). The same subjects, case counts, ``k`` and ``seed`` always
give the same folds.

Written here rather than taken from scikit-learn: scikit-learn is not a dependency of
segmap, and its ``GroupKFold`` is not seeded (it always deals groups the same way).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from segmap.datasets.errors import DatasetError

DEFAULT_FOLDS = 5
DEFAULT_SEED = 0


def grouped_folds(subjects: Sequence[str], k: int, seed: int = DEFAULT_SEED) -> list[int]:
    """The fold (0 to ``k - 1``) of each case, given each case's subject.

    Raises:
        DatasetError: ``k`` below 2, or more folds than subjects.
    """
    counts = Counter(subjects)
    if k < 2:
        raise DatasetError(f"folds must be at least 2, got {k}")
    if k > len(counts):
        raise DatasetError(
            f"{len(counts)} subject(s) cannot fill {k} folds when a subject's cases stay in "
            f"one fold; ask for at most {len(counts)} folds (--folds {len(counts)})"
            if len(counts) >= 2
            else f"the dataset has {len(counts)} subject(s); folds grouped by subject need at "
            "least 2"
        )
    names = sorted(counts)
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    # Largest subjects first (stable: equal sizes keep the shuffled order).
    dealing = sorted(shuffled, key=lambda s: -counts[s])
    load = [0] * k
    fold_of: dict[str, int] = {}
    for subject in dealing:
        fold = min(range(k), key=lambda f: (load[f], f))
        fold_of[subject] = fold
        load[fold] += counts[subject]
    return [fold_of[s] for s in subjects]
