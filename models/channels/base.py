"""What every channel answers: scores over the catalogue for a batch of
requests, and which requests it can answer at all."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import scipy.sparse


@dataclasses.dataclass(frozen=True)
class Requests:
    """A batch of Q requests.

    Attributes:
      batch: the parsed request features (`user_id` `[Q]`, `history` `[Q, L]`
        most recent last, `""` padding, and any extra query inputs), as the
        evaluator reads them.
      rows: binary `[Q, N]` of each history's candidate items.
    """

    batch: dict
    rows: scipy.sparse.csr_matrix

    def __len__(self) -> int:
        return self.rows.shape[0]

    def history_lengths(self) -> np.ndarray:
        """Distinct candidate items in each history."""
        return np.diff(self.rows.indptr)


class Channel(Protocol):
    name: str

    def score(self, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
        """(float32 `[Q, N]` scores, bool `[Q]`: the request is answered).
        An unanswered request's scores are ignored by the merge."""
