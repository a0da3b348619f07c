import numpy as np
import pytest

from models import features
from models.channels.base import Requests
from models.channels.clicks import Catalogue
from models.channels.two_tower import TwoTowerChannel
from models.towers_export import Towers


def test_scores_are_the_towers_query_candidate_products(towers_dir):
    towers = Towers(towers_dir)
    catalogue = Catalogue(towers.vocab.item_ids)
    histories = [[catalogue.item_ids[0], ""], ["", ""]]
    batch = {features.USER_ID: np.array([b"u1", b"nobody"]),
             features.HISTORY: np.array(histories, dtype=object).astype(bytes),
             **features.default_query_inputs(towers.query_specs[2:], 2)}
    scores, answered = TwoTowerChannel(towers, catalogue.item_ids).score(
        Requests(batch, catalogue.rows(histories)))
    expected = towers.query_embeddings(["u1", "nobody"], histories, {}).numpy() @ \
        towers.candidate_embeddings().numpy().T
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert answered.tolist() == [True, True]


def test_a_different_catalogue_is_refused(towers_dir):
    towers = Towers(towers_dir)
    with pytest.raises(ValueError, match="not the catalogue"):
        TwoTowerChannel(towers, list(reversed(towers.vocab.item_ids)))
