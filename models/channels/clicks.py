"""Training clicks as index arrays over the candidate catalogue, and request
histories as sparse rows: the input every non-neural channel is fitted on."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.data import _expand  # noqa: E402

NOT_A_CANDIDATE = -1


def as_array(value) -> np.ndarray:
    """A batch feature (tensor or array) as a numpy array."""
    return value.numpy() if isinstance(value, tf.Tensor) else np.asarray(value)


class Catalogue:
    """The N candidates in score-column order and their index."""

    def __init__(self, item_ids: list[str]):
        self.item_ids = list(item_ids)
        self.index = {item: n for n, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows(self, histories) -> scipy.sparse.csr_matrix:
        """Binary `[Q, N]` matrix of each history's candidate items.

        Args:
          histories: lists of item ids, or a string array `[Q, L]` padded
            with `""` (bytes or str).
        """
        indices, indptr = [], [0]
        for history in histories:
            known = set()
            for item in history:
                item = item.decode() if isinstance(item, bytes) else item
                if item and item in self.index:
                    known.add(self.index[item])
            indices += sorted(known)
            indptr.append(len(indices))
        return scipy.sparse.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                                       shape=(len(indptr) - 1, len(self)))


@dataclasses.dataclass(frozen=True)
class Clicks:
    """Clicks in time order: user row, candidate index (`NOT_A_CANDIDATE` for
    an item outside the catalogue) and unix time of each."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    num_users: int
    num_items: int

    def matrix(self, mask: np.ndarray | None = None) -> scipy.sparse.csr_matrix:
        """Binary `[users, N]` matrix of the (masked) clicks on candidates;
        repeated clicks count once."""
        keep = self.items != NOT_A_CANDIDATE
        if mask is not None:
            keep &= mask
        matrix = scipy.sparse.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (self.users[keep], self.items[keep])),
            shape=(self.num_users, self.num_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix


def from_lists(users: list[str], items: list[str], timestamps, catalogue: Catalogue) -> Clicks:
    """`Clicks` from parallel lists (any order; sorted by time, stably)."""
    order = np.argsort(np.asarray(timestamps, np.int64), kind="stable")
    user_index: dict[str, int] = {}
    user_rows = np.array([user_index.setdefault(users[n], len(user_index)) for n in order],
                         np.int64)
    item_rows = np.array([catalogue.index.get(items[n], NOT_A_CANDIDATE) for n in order],
                         np.int64)
    return Clicks(users=user_rows, items=item_rows,
                  timestamps=np.asarray(timestamps, np.int64)[order],
                  num_users=len(user_index), num_items=len(catalogue))


def read_clicks(file_patterns, catalogue: Catalogue, batch_size: int = 65536) -> Clicks:
    """The clicks of ClickExampleGen example files (gzipped `tf.Example`s)."""
    spec = {features.USER_ID: tf.io.FixedLenFeature([], tf.string),
            features.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
            features.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64)}
    users: list[str] = []
    items: list[str] = []
    times: list[np.ndarray] = []
    dataset = tf.data.TFRecordDataset(_expand(file_patterns), compression_type="GZIP")
    for batch in dataset.batch(batch_size):
        parsed = tf.io.parse_example(batch, spec)
        users += [u.decode() for u in parsed[features.USER_ID].numpy()]
        items += [i.decode() for i in parsed[features.ITEM_ID].numpy()]
        times.append(parsed[features.TIMESTAMP].numpy())
    if not users:
        raise ValueError(f"no clicks in {file_patterns}")
    return from_lists(users, items, np.concatenate(times), catalogue)
