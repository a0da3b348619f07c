"""Assigning clicks to the train / eval (/ test) splits.

``split_by: time`` (default): train = timestamp < eval_start, eval =
eval_start <= timestamp < test_start, test = timestamp >= test_start (no test
split without a test cut-off). Cut-offs are fixed timestamps or come from
fractions of clicks (newest `test_fraction` -> test, the `eval_fraction`
before it -> eval) via approximate quantiles of the accepted timestamps.

``split_by: user``: every click of a user goes to the split its user hashes
to (`eval_fraction` of users -> eval, `test_fraction` -> test), so held-out
users are never seen in training; the hash is stable across runs and runners.
"""

from __future__ import annotations

import hashlib

TRAIN, EVAL, TEST = "train", "eval", "test"
NUM_QUANTILES = 1001


def split_names(with_test: bool) -> list[str]:
    return [TRAIN, EVAL, TEST] if with_test else [TRAIN, EVAL]


def cutoffs_from_quantiles(quantiles: list[int], eval_fraction: float,
                           test_fraction: float) -> tuple[int | None, int | None]:
    """(eval_start, test_start or None) from evenly spaced timestamp quantiles.

    No quantiles (no accepted click) gives (None, None).
    """
    if not quantiles:
        return None, None
    last = len(quantiles) - 1
    eval_start = int(quantiles[int(round((1.0 - eval_fraction - test_fraction) * last))])
    if not test_fraction:
        return eval_start, None
    return eval_start, int(quantiles[int(round((1.0 - test_fraction) * last))])


def split_by_time(timestamp: int, cutoffs: tuple[int, int | None]) -> int:
    """Index into `split_names`: 0 train, 1 eval, 2 test."""
    eval_start, test_start = cutoffs
    if test_start is not None and timestamp >= test_start:
        return 2
    return 1 if timestamp >= eval_start else 0


def user_bucket(user_id: str, seed: int) -> float:
    """A stable uniform number in [0, 1) for a user id."""
    digest = hashlib.blake2b(f"{seed}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split_by_user(user_id: str, eval_fraction: float, test_fraction: float, seed: int) -> int:
    """Index into `split_names` for a user-holdout split."""
    bucket = user_bucket(user_id, seed)
    if bucket < eval_fraction:
        return 1
    return 2 if bucket < eval_fraction + test_fraction else 0
