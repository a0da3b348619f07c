import contextlib
import io

import numpy as np

from models.channels.base import Requests
from models.channels.config import WalsChannelConfig
from models.channels.wals import WalsChannel, fold_in
from tests.models.channels import data
from tests.models.channels.test_item_cf import held_out_hit_rate, popularity_hit_rate


def test_fold_in_is_the_fits_own_user_step():
    """The user factor folded in from a history equals `implicit`'s exact
    recalculation for that history."""
    from implicit.als import AlternatingLeastSquares

    catalogue, clicks, held_out = data.log(num_users=100, num_items=40)
    model = AlternatingLeastSquares(factors=8, regularization=0.1, alpha=20.0, iterations=3,
                                    random_state=0, use_cg=False)
    with contextlib.redirect_stderr(io.StringIO()):
        model.fit(clicks.matrix(), show_progress=False)
    rows = catalogue.rows([history for history, _ in held_out[:20]])
    expected = np.asarray(model.recalculate_user(np.arange(20), rows))
    ours = fold_in(np.asarray(model.item_factors), rows, alpha=20.0, regularization=0.1)
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-4)


def test_wals_beats_popularity_for_users_unseen_at_training():
    catalogue, clicks, held_out = data.log()
    channel = WalsChannel.fit(clicks, WalsChannelConfig(factors=16, iterations=10))
    # Held-out histories are folded in, never looked up: any history is a new user.
    assert held_out_hit_rate(channel, catalogue, held_out) > popularity_hit_rate(
        clicks, catalogue, held_out) + 0.05


def test_an_empty_history_is_not_answered():
    catalogue, clicks, _ = data.log(num_users=50, num_items=30)
    channel = WalsChannel.fit(clicks, WalsChannelConfig(factors=4, iterations=2))
    scores, answered = channel.score(Requests({}, catalogue.rows([[], [catalogue.item_ids[0]]])))
    assert answered.tolist() == [False, True]
    assert scores.shape == (2, len(catalogue))
