"""The channel benchmark's split of the eval users into tune and report halves."""

import numpy as np
import tensorflow as tf

from benchmarks import channels
from models import features


def test_halves_split_users_not_clicks_and_keep_every_click():
    users = [f"u{n % 40}".encode() for n in range(200)]
    batch = {features.USER_ID: tf.constant(users), "n": tf.range(200)}
    halves = {name: list(channels.half([batch], name)) for name in channels.HALVES}
    seen = {name: {u for b in parts for u in b[features.USER_ID].numpy()}
                for name, parts in halves.items()}
    assert seen["tune"] and seen["report"] and not seen["tune"] & seen["report"]
    rows = np.concatenate([b["n"].numpy() for parts in halves.values() for b in parts])
    assert sorted(rows.tolist()) == list(range(200))
