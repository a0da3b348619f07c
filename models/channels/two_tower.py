"""The two_tower channel: trained towers (`models.towers_export.Towers`)
scoring the catalogue with their query embedding of each request; every
request is answered (an empty history is still a query)."""

from __future__ import annotations

import numpy as np

from models import features
from models.channels.base import Requests
from models.towers_export import Towers


class TwoTowerChannel:
    name = "two_tower"

    def __init__(self, towers: Towers, item_ids: list[str]):
        if towers.vocab.item_ids != list(item_ids):
            raise ValueError("two_tower channel: the towers' vocabulary is not the catalogue "
                             "the other channels rank")
        self.towers = towers
        self.candidates = towers.candidate_embeddings().numpy()

    def score(self, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
        batch = requests.batch
        extra = {spec.name: batch[spec.name] for spec in self.towers.query_specs[2:]}
        query = self.towers.query_embeddings(batch[features.USER_ID], batch[features.HISTORY],
                                             extra).numpy()
        return query @ self.candidates.T, np.ones(len(requests), bool)
