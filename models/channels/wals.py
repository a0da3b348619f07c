"""The wals channel: weighted alternating least squares on implicit feedback
(Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback
Datasets", ICDM 2008), fitted with the `implicit` library.

A click has confidence `alpha` and preference 1; every other pair confidence
1 and preference 0. Item factors Y come from the fit; a request's user
factor is folded in from its history at request time,

    u = (Y'Y + (alpha - 1) sum_h y_h y_h' + lambda I)^-1 alpha sum_h y_h,

the exact least-squares step of the fit (`implicit` solves the same system),
so a user unseen at training is served without retraining. An empty
history is not answered.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from models.channels.base import Requests
from models.channels.clicks import Clicks
from models.channels.config import WalsChannelConfig


def fit_item_factors(clicks: Clicks, config: WalsChannelConfig) -> np.ndarray:
    """float32 `[N, factors]` item factors of implicit ALS on the clicks."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises over users itself; a threaded BLAS under it
    # oversubscribes the cores (its own warning says so).
    with threadpool_limits(1, "blas"), contextlib.redirect_stderr(io.StringIO()):
        model = AlternatingLeastSquares(
            factors=config.factors, regularization=config.regularization, alpha=config.alpha,
            iterations=config.iterations, random_state=config.seed)
        model.fit(clicks.matrix(), show_progress=False)
    return np.asarray(model.item_factors, np.float32)


def fold_in(item_factors: np.ndarray, rows, alpha: float, regularization: float) -> np.ndarray:
    """float32 `[Q, factors]` user factors of the binary history rows `[Q, N]`."""
    factors = item_factors.astype(np.float64)
    d = factors.shape[1]
    base = factors.T @ factors + regularization * np.eye(d)
    out = np.zeros((rows.shape[0], d), np.float64)
    for q in range(rows.shape[0]):
        items = rows.indices[rows.indptr[q]:rows.indptr[q + 1]]
        if not len(items):
            continue
        y = factors[items]
        out[q] = np.linalg.solve(base + (alpha - 1.0) * y.T @ y, alpha * y.sum(axis=0))
    return out.astype(np.float32)


class WalsChannel:
    name = "wals"

    def __init__(self, item_factors: np.ndarray, alpha: float, regularization: float):
        self.item_factors = np.asarray(item_factors, np.float32)
        self.alpha = alpha
        self.regularization = regularization

    @classmethod
    def fit(cls, clicks: Clicks, config: WalsChannelConfig) -> WalsChannel:
        return cls(fit_item_factors(clicks, config), config.alpha, config.regularization)

    def score(self, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
        users = fold_in(self.item_factors, requests.rows, self.alpha, self.regularization)
        return users @ self.item_factors.T, requests.history_lengths() > 0
