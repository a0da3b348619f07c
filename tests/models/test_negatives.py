"""The mixed-negative sampler draws from VocabStats' own distribution."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import vocab as vocab_lib
from models.negatives import CandidateSampler, negative_distribution
from tests.conftest import single_model_config

ITEMS = ["a", "b", "c", "d"]
COUNTS = [40.0, 30.0, 20.0, 10.0]
# Deliberately unlike any power of the counts: the sampler must read the
# column, not recompute a distribution of its own.
NEGATIVE = [0.1, 0.2, 0.3, 0.4]


def _write(directory, negative=NEGATIVE, items=ITEMS):
    vocab_lib.write_vocab(str(directory), [(i, c, c) for i, c in zip(ITEMS, COUNTS, strict=True)],
                          [("u", 1.0)], {})
    vocab_lib.write_item_stats(str(directory), [
        vocab_lib.ItemStats(item, count, count, count / sum(COUNTS), p, count, 0, 0)
        for item, count, p in zip(items, COUNTS, negative, strict=True)])


def test_popularity_negatives_follow_the_vocab_stats_column(tmp_path):
    _write(tmp_path)
    vocab = vocab_lib.read_vocab(str(tmp_path))
    assert vocab.item_negative_sampling_probability == NEGATIVE
    config = single_model_config(negatives={"mixed": 4000, "mixed_distribution": "popularity"})
    tf.random.set_seed(0)
    sampler = CandidateSampler(vocab, config)
    drawn = sampler.candidate_ids(tf.constant(["a"]))[1:].numpy()
    shares = [float(np.mean(drawn == item.encode())) for item in ITEMS]
    np.testing.assert_allclose(shares, NEGATIVE, atol=0.03)
    # The logQ of a candidate counts both routes with this column.
    log_q = sampler.log_q(tf.constant(["d"]), tf.constant(1))
    assert float(np.exp(log_q[0])) == pytest.approx(1 * 0.1 + 4000 * 0.4, rel=1e-5)


def test_uniform_needs_no_item_stats(tmp_path):
    vocab_lib.write_vocab(str(tmp_path), [(i, c, c) for i, c in zip(ITEMS, COUNTS, strict=True)],
                          [("u", 1.0)], {})
    vocab = vocab_lib.read_vocab(str(tmp_path))
    np.testing.assert_allclose(negative_distribution(vocab, "uniform"), [0.25] * 4)
    with pytest.raises(ValueError, match="item_stats.tsv"):
        negative_distribution(vocab, "popularity")


def test_item_stats_in_another_order_is_refused(tmp_path):
    _write(tmp_path, items=list(reversed(ITEMS)))
    with pytest.raises(ValueError, match="another order than items.tsv"):
        vocab_lib.read_vocab(str(tmp_path))


def test_there_is_one_alpha(tmp_path):
    # The model config has no alpha of its own: VocabStats' is the only one.
    from clicklog.config import ConfigError
    with pytest.raises(ConfigError, match="popularity_alpha"):
        single_model_config(negatives={"popularity_alpha": 0.5})
