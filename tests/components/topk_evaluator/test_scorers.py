import numpy as np
import tensorflow as tf

from components.topk_evaluator.scorers import towers_scorer
from models.towers_export import Towers


def test_scores_match_the_towers_own_dot_products_including_unknown_candidates(towers_dir):
    towers = Towers(towers_dir)
    candidates = ["i3", "never-seen", "i1"]
    score = towers_scorer(towers_dir, candidates)
    batch = {"user_id": tf.constant(["u1", "u2"]),
             "history": tf.constant([["i1", "i2"], ["", ""]])}
    got = score(batch).numpy()
    query = towers.query_embeddings(["u1", "u2"], [["i1", "i2"], ["", ""]])
    items = towers.module.candidate_embedding(tf.constant(candidates))["embedding"]
    np.testing.assert_allclose(got, tf.matmul(query, items, transpose_b=True).numpy(), rtol=1e-5)
    assert got.shape == (2, 3)
