"""models/data.py: the impressed negatives as a padded [B, K] block."""

import tensorflow as tf

from clicklog.formats import Click
from components.click_example_gen.click_features import ClickFeatures
from components.click_example_gen.examples import to_example
from models import features
from models.data import make_dataset


def test_impressed_negatives_are_the_most_recent_k_padded_and_absent_means_none(tmp_path):
    path = str(tmp_path / "x.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        writer.write(to_example(Click("u", "a", 10), ClickFeatures(
            (), impressed_negatives=("x", "y", "z"))))
        writer.write(to_example(Click("u", "b", 20), ClickFeatures(("a",))))  # no feature
        writer.write(to_example(Click("v", "c", 30), ClickFeatures(
            (), impressed_negatives=("w",))))
    batch = next(iter(make_dataset(path, 3, 2, shuffle=False, impressed_negatives=2)))
    assert batch[features.IMPRESSED_NEGATIVES].numpy().tolist() == [
        [b"y", b"z"], [b"", b""], [b"w", b""]]
    off = next(iter(make_dataset(path, 3, 2, shuffle=False)))
    assert features.IMPRESSED_NEGATIVES not in off
