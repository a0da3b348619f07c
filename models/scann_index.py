"""An embedded ScaNN top-K index as a savable `tf.Module`.

Built with `scann_ops` directly rather than `tfrs.layers.factorized_top_k.ScaNN`
because that layer always adds a partitioning tree, and a one-leaf tree (the
natural setting for a small catalogue) makes ScaNN 1.3.2 return index 0 for
every neighbour (seen here; see docs/dependencies.md). Small catalogues are
therefore scored exactly (`score_brute_force`), larger ones with a tree,
asymmetric hashing and exact re-ordering.
"""

from __future__ import annotations

import os
import uuid

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from models.config import ScannConfig  # noqa: E402

# Below this many candidates an exact scan is as fast as a tree and never wrong.
EXACT_BELOW = 2000
# Asymmetric hashing's dimensions per block when neither given nor chosen by a
# sweep (`models/scann_tuning.py`).
DEFAULT_DIMENSIONS_PER_BLOCK = 2


def resolve(settings: ScannConfig, num_items: int, k: int) -> ScannConfig:
    """`settings` with the automatic values (0) filled for `num_items`
    candidates and `k` results, by fixed rules (the export measures instead:
    `models/scann_tuning.py`). A catalogue under `EXACT_BELOW` items gets
    num_leaves=0 (an exact scan)."""
    settings = settings.replace(
        dimensions_per_block=settings.dimensions_per_block or DEFAULT_DIMENSIONS_PER_BLOCK)
    if settings.num_leaves == 0 and num_items < EXACT_BELOW:
        return settings.replace(num_leaves=0, num_leaves_to_search=0, reorder=0)
    leaves = settings.num_leaves or max(2, int(round(num_items ** 0.5)))
    if leaves > num_items:
        raise ValueError(f"model.export.scann.num_leaves={leaves}: expected at most the number "
                         f"of candidates ({num_items})")
    # 20% of the leaves: recall@100 vs exact 0.95 on the MovieTweetings towers
    # (10% gave 0.86); see docs/architecture.md.
    search = settings.num_leaves_to_search or max(1, leaves // 5)
    if search > leaves:
        raise ValueError(f"model.export.scann.num_leaves_to_search={search}: expected at most "
                         f"num_leaves ({leaves})")
    reorder = min(settings.reorder or max(4 * k, 200), num_items)
    return settings.replace(num_leaves=leaves, num_leaves_to_search=search, reorder=reorder)


class ScannIndex(tf.Module):
    """Top-K by dot product over fixed candidate embeddings, via ScaNN ops."""

    def __init__(self, embeddings: tf.Tensor, identifiers: tf.Tensor, k: int,
                 settings: ScannConfig):
        super().__init__()
        from scann.scann_ops.py import scann_ops

        num_items = int(embeddings.shape[0])
        self.settings = resolve(settings, num_items, k)
        builder = scann_ops.builder(db=embeddings, num_neighbors=k,
                                    distance_measure="dot_product")
        if self.settings.num_leaves == 0:
            builder = builder.score_brute_force()
        else:
            builder = (builder
                       .tree(num_leaves=self.settings.num_leaves,
                             num_leaves_to_search=self.settings.num_leaves_to_search,
                             training_sample_size=num_items)
                       .score_ah(self.settings.dimensions_per_block)
                       .reorder(self.settings.reorder))
        self._searcher = builder.build(shared_name=f"scann-{uuid.uuid4()}").serialize_to_module()
        self.identifiers = tf.Variable(identifiers, trainable=False)
        self._k = k

    def __call__(self, queries: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """float32 `[B, D]` queries -> (scores `[B, k]`, identifiers `[B, k]`)."""
        from scann.scann_ops.py import scann_ops

        searcher = scann_ops.searcher_from_module(self._searcher)
        result = searcher.search_batched_parallel(queries, final_num_neighbors=self._k)
        return result.distances, tf.gather(self.identifiers, result.indices)
