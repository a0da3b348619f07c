"""The towers' inputs beyond item ids and the history, one module each.

Query inputs (`QUERY_INPUTS`) are Keras layer classes with
`enabled(config)`, `specs(config)` (the named serving inputs they add, in
signature order) and `cls(config)` whose call `(inputs: dict) -> [B, d]` is
concatenated to the pooled history. Candidate inputs (`ITEM_INPUTS`) have
`enabled(config)` and `cls(config, vocab, item_features)` whose call
`(row index [B]) -> [[B, D], ...]` is added to the item's id embedding.
A new input is a module here, one line below and its switch in
`models/config.py: TowersConfig`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.towers.inputs import catalogue, context, example_age, popularity, recency  # noqa: E402

QUERY_INPUTS = {
    "recency": recency.RecencyInput,
    "example_age": example_age.ExampleAgeInput,
    "context": context.ContextFeaturesInput,
}
ITEM_INPUTS = {
    "popularity": popularity.PopularityInput,
    "catalogue": catalogue.CatalogueInput,
}

USER_ID_SPEC = tf.TensorSpec([None], tf.string, name=features.USER_ID)
HISTORY_SPEC = tf.TensorSpec([None, None], tf.string, name=features.HISTORY)


def query_input_specs(config=None) -> list[tf.TensorSpec]:
    """Named specs of the query inputs, in signature order: `user_id` string
    `[B]`, `history` string `[B, L]`, then each enabled query input's specs."""
    specs = [USER_ID_SPEC, HISTORY_SPEC]
    if config is not None:
        for cls in QUERY_INPUTS.values():
            if cls.enabled(config):
                specs += cls.specs(config)
    return specs
