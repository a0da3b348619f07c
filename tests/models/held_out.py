"""Last-click-held-out data for the model quality tests.

Each user's clicks but the last are training examples (history: the user's
earlier clicks); the last is held out with the user's history before it.
"""

from __future__ import annotations

import collections
import contextlib

import tensorflow as tf

from clicklog.formats import Click
from components.click_example_gen.examples import to_example
from models import vocab


def write_held_out(root, clicks, max_history: int, with_eval: bool = False) -> dict:
    """Writes `train.tfrecord.gz` (and with `with_eval` the held-out clicks
    as `eval.tfrecord.gz`) and the VocabStats files under `root`.

    Returns:
      {"train", "eval" (or None), "vocab": paths, "held_out": [(user, its
      last `max_history` earlier items, held-out item)], "counts": training
      clicks per item}.
    """
    by_user = collections.defaultdict(list)
    for user, item, timestamp in clicks:
        by_user[user].append((timestamp, item))
    train_path = str(root / "train.tfrecord.gz")
    eval_path = str(root / "eval.tfrecord.gz") if with_eval else None
    held_out, counts = [], collections.Counter()
    with contextlib.ExitStack() as files:
        writer = files.enter_context(tf.io.TFRecordWriter(train_path, options="GZIP"))
        eval_writer = (files.enter_context(tf.io.TFRecordWriter(eval_path, options="GZIP"))
                       if with_eval else None)
        for user, events in sorted(by_user.items()):
            items = [item for _, item in events]
            for step, (timestamp, item) in enumerate(events[:-1]):
                writer.write(to_example(Click(user, item, timestamp), tuple(items[:step])))
                counts[item] += 1
            held_out.append((user, items[:-1][-max_history:], items[-1]))
            if eval_writer is not None:
                eval_writer.write(to_example(Click(user, items[-1], events[-1][0]),
                                             tuple(items[:-1])))
    vocab.write_vocab(str(root / "vocab"), [(i, c, c) for i, c in counts.items()],
                      [(u, len(e)) for u, e in by_user.items()],
                      {"max_timestamp": max(c[2] for c in clicks),
                       "min_timestamp": min(c[2] for c in clicks)})
    return {"train": train_path, "eval": eval_path, "vocab": str(root / "vocab"),
            "held_out": held_out, "counts": counts}
