"""History pooling of the query tower, chosen by `model.history.pooling`.

Every entry is a Keras layer class built as `cls(config)` (`ModelConfig`)
whose call `(embeddings [B, L, D], mask [B, L, 1], training=None) -> [B, P]`
pools the history's item embeddings (mask 1 at a real item, 0 at padding or
a dropped item; a history with no real item pools to zeros). The history is
in time order, most recent last among the real items. A new pooling is a
module here and one line below.
"""

from models.towers.pooling import attention, mean, sequence

POOLINGS = {
    "mean": mean.MeanPooling,
    "attention": attention.AttentivePooling,
    "self_attention": sequence.SequencePooling,
}
