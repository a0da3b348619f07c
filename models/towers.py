"""Query and candidate towers of the two-tower model.

Query tower: user id embedding (optional) and the user's most recent items,
pooled by a mean of their embeddings (YouTube DNN style; optionally weighted
by position, `history_position_decay`) or by multi-head attention with
learned queries, optionally the newest items' own embeddings
(`history_last_items`), the time since the user's previous click and declared
user/context features, then an optional ReLU MLP and a projection to the
shared embedding space. History items may carry their catalogue tokens
(`history_item_side_features`) and be dropped at random in training
(`history_dropout`). Candidate tower: item id embedding. In the query tower,
unknown user ids and history items hash into `num_oov_buckets` OOV rows (the
vocabulary's `vocab.num_oov_buckets`, default 1); the candidate tower keeps one
OOV row (see `CandidateTower`). `""` in the history is padding and is ignored
by the pooling.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.hparams import HParams  # noqa: E402
from models.vocab import check_oov_buckets  # noqa: E402


def _normalise(x: tf.Tensor, similarity: str) -> tf.Tensor:
    return tf.math.l2_normalize(x, axis=-1) if similarity == "cosine" else x


class AttentivePooling(tf.keras.layers.Layer):
    """Multi-head attentive pooling of a padded sequence of embeddings.

    Each head has a learned query vector; its weights over the valid (unmasked)
    positions are a softmax of key . query / sqrt(D), keys being a linear map
    of the item embeddings. Heads' weighted sums are concatenated `[B, H * D]`.
    A history with no valid item pools to zeros.
    """

    def __init__(self, heads: int, dim: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.dim = dim
        self.keys = tf.keras.layers.Dense(
            dim, use_bias=False,
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed))
        self.queries = self.add_weight(
            name="queries", shape=(dim, heads),
            initializer=tf.keras.initializers.RandomNormal(stddev=0.05, seed=seed + 1))

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        # embeddings [B, L, D], mask [B, L, 1] (1 = a real item).
        dim = tf.cast(tf.shape(embeddings)[-1], embeddings.dtype)
        logits = tf.einsum("bld,dh->blh", self.keys(embeddings), self.queries) / tf.sqrt(dim)
        logits += (1.0 - mask) * -1e9
        weights = tf.nn.softmax(logits, axis=1) * mask  # [B, L, H]; all-padding rows -> 0
        pooled = tf.einsum("blh,bld->bhd", weights, embeddings)
        return tf.reshape(pooled, [-1, self.heads * self.dim])


# Upper edges (seconds) of the recency buckets: under a minute, ten minutes,
# an hour, six hours, a day, three days, a week, a month, three months, a
# year, then a year or more; a negative value (no previous click) is bucket 0.
RECENCY_BOUNDARIES = (0.0, 60.0, 600.0, 3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0,
                      7 * 86400.0, 30 * 86400.0, 90 * 86400.0, 365 * 86400.0)


def recency_bucket(seconds: tf.Tensor) -> tf.Tensor:
    """int32 bucket `[B]` of seconds since the previous click (-1: none -> 0)."""
    return tf.raw_ops.Bucketize(input=tf.cast(seconds, tf.float32),
                                boundaries=list(RECENCY_BOUNDARIES))


def feature_tokens(values: tf.Tensor, kind: str) -> tf.Tensor:
    """Strings `[B, T]` of a declared feature's tokens (`""` = none).

    A string feature is one token per row (`""` when missing), an int its
    decimal text, a string list its values.
    """
    if kind == "int":
        return tf.strings.as_string(values)[:, None]
    if kind == "string":
        return values[:, None]
    return values


class HashedTokenEmbedding(tf.keras.layers.Layer):
    """Mean embedding of string tokens `[B, T]` hashed into `buckets` rows;
    `""` tokens are padding and a row of padding embeds to zeros."""

    def __init__(self, buckets: int, dim: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.buckets = buckets
        self.table = tf.keras.layers.Embedding(
            buckets, dim, embeddings_initializer=tf.keras.initializers.RandomNormal(
                stddev=0.05, seed=seed))

    def call(self, tokens: tf.Tensor) -> tf.Tensor:
        mask = tf.cast(tf.not_equal(tokens, features.PADDING), tf.float32)[..., None]
        embedded = self.table(tf.strings.to_hash_bucket_fast(tokens, self.buckets))
        return tf.reduce_sum(embedded * mask, axis=1) / tf.maximum(
            tf.reduce_sum(mask, axis=1), 1.0)


def mean_token_embedding(values: tf.Tensor, splits: tf.Tensor, table, index: tf.Tensor
                         ) -> tf.Tensor:
    """`index.shape + [D]`: for each row index of a ragged token table
    (`hashed_token_table`), the mean embedding of its tokens (zeros for a row
    without tokens)."""
    flat = tf.reshape(index, [-1])
    tokens = tf.gather(tf.RaggedTensor.from_row_splits(values, splits), flat)
    summed = tf.reduce_sum(tf.ragged.map_flat_values(table, tokens), axis=1)
    mean = summed / tf.maximum(tf.cast(tokens.row_lengths(), tf.float32)[:, None], 1.0)
    return tf.reshape(mean, tf.concat([tf.shape(index), [-1]], axis=0))


def drop_history_items(mask: tf.Tensor, rate: float, seed=None) -> tf.Tensor:
    """`mask` `[B, L, 1]` with each real item dropped (set to 0) with
    probability `rate` (training-time history dropout); the rest stay 1."""
    keep = tf.cast(tf.random.uniform(tf.shape(mask), seed=seed) >= rate, mask.dtype)
    return mask * keep


def steps_before_newest(mask: tf.Tensor) -> tf.Tensor:
    """float `[B, L, 1]`: how many real items follow each position (0 at the
    most recent item), whatever the padding's place; `mask` `[B, L, 1]`."""
    return tf.cumsum(mask, axis=1, exclusive=True, reverse=True)


def position_weighted_mean(embedded: tf.Tensor, mask: tf.Tensor, decay: float) -> tf.Tensor:
    """`[B, D]` mean of the real items' embeddings `[B, L, D]`, the item `n`
    steps before the most recent one weighted by `decay ** n` (1: the plain
    mean); an empty history pools to zeros."""
    weights = mask
    if decay != 1.0:
        weights = mask * tf.pow(tf.constant(decay, tf.float32), steps_before_newest(mask))
    summed = tf.reduce_sum(embedded * weights, axis=1)
    return summed / tf.maximum(tf.reduce_sum(weights, axis=1), 1e-9)


def last_items(embedded: tf.Tensor, mask: tf.Tensor, count: int) -> tf.Tensor:
    """`[B, count * D]`: the embeddings of the `count` most recent real items,
    most recent first, zeros where the history is shorter."""
    steps = steps_before_newest(mask)
    return tf.concat([tf.reduce_sum(embedded * mask * tf.cast(tf.equal(steps, float(n)),
                                                              tf.float32), axis=1)
                      for n in range(count)], axis=-1)


class QueryTower(tf.keras.Model):
    """Maps the query inputs (`features.query_input_specs`: user_id `[B]`,
    history `[B, max_history]` and any extra features) to embeddings `[B, D]`.

    Unknown user ids and history items (cold start, ids cut from the
    vocabulary by its count or size limits) hash into `num_oov_buckets` OOV
    rows of their tables instead of sharing one, so that they are not all the
    same user or item (`vocab.num_oov_buckets` of VocabStatsGen). With 1 the
    tables are those of a single OOV bucket.
    """

    def __init__(self, user_ids: list[str], item_ids: list[str], hparams: HParams,
                 item_features: dict[str, list[list[str]]] | None = None,
                 num_oov_buckets: int = 1):
        super().__init__()
        self._hparams = hparams
        self.num_oov_buckets = oov = check_oov_buckets(num_oov_buckets)
        dim = hparams.embedding_dim
        init = tf.keras.initializers.RandomNormal(stddev=0.05, seed=hparams.seed)
        # Rows: the OOV buckets 0 .. K - 1, then the vocabulary.
        self.user_lookup = tf.keras.layers.StringLookup(
            vocabulary=user_ids, mask_token=None, num_oov_indices=oov)
        self.user_embedding = tf.keras.layers.Embedding(
            len(user_ids) + oov, dim, embeddings_initializer=init)
        # Index 0 is the padding mask, 1 .. K the OOV buckets, then the vocabulary.
        self.history_lookup = tf.keras.layers.StringLookup(
            vocabulary=item_ids, mask_token=features.PADDING, num_oov_indices=oov)
        self.history_embedding = tf.keras.layers.Embedding(
            len(item_ids) + 1 + oov, dim, embeddings_initializer=init)
        # history_item_side_features: per catalogue feature, each history
        # item's tokens (rows in history-lookup order: padding, K OOV, items).
        self.history_side = []
        if hparams.history_item_side_features and item_features:
            for n, name, values, splits in item_token_tables(
                    item_features, len(item_ids), hparams.item_feature_buckets,
                    padding_row=True, oov_rows=oov):
                self.history_side.append((tf.constant(values), tf.constant(splits),
                                          tf.keras.layers.Embedding(
                    hparams.item_feature_buckets, dim, name=f"history_{name}_embedding",
                    embeddings_initializer=tf.keras.initializers.RandomNormal(
                        stddev=0.05, seed=hparams.seed + 60 + n))))
        self.attention = (AttentivePooling(hparams.attention_heads, dim, hparams.seed + 3)
                          if hparams.history_pooling == "attention" else None)
        self.recency_embedding = (
            tf.keras.layers.Embedding(len(RECENCY_BOUNDARIES) + 1, dim,
                                      embeddings_initializer=init, name="recency_embedding")
            if hparams.use_recency_features else None)
        self.context_features = [
            (name, kind, None if kind == "float" else HashedTokenEmbedding(
                hparams.query_feature_buckets, dim, hparams.seed + 40 + n,
                name=f"{name}_embedding"))
            for n, (name, kind) in enumerate(hparams.query_features)]
        self.hidden = [
            tf.keras.layers.Dense(width, activation="relu",
                                  kernel_initializer=tf.keras.initializers.GlorotUniform(
                                      seed=hparams.seed + 10 + n))
            for n, width in enumerate(hparams.query_hidden_layers)]
        self.projection = tf.keras.layers.Dense(
            dim, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=hparams.seed))

    def call(self, inputs: dict, training=None) -> tf.Tensor:
        return self.embed(self.representation(inputs, training=bool(training)))

    def example_inputs(self) -> dict:
        """A one-row input of every query input (empty history, defaults),
        used to build the tower's variables."""
        return features.default_query_inputs(features.query_input_specs(self._hparams))

    def representation(self, inputs: dict, training: bool = False) -> tf.Tensor:
        """The tower's pooled inputs (history, user id, extra features), before
        any MLP: `[B, U]`.

        What the teacher ranker of teacher-guided retrieval sees of the user.
        In training, `history_dropout` drops history items at random.
        """
        history_index = self.history_lookup(inputs[features.HISTORY])  # [B, L]
        mask = tf.cast(tf.not_equal(history_index, 0), tf.float32)[..., None]  # [B, L, 1]
        if training and self._hparams.history_dropout:
            mask = drop_history_items(mask, self._hparams.history_dropout)
        embedded = self.history_embedding(history_index)  # [B, L, D]
        for values, splits, table in self.history_side:
            embedded += mean_token_embedding(values, splits, table, history_index)
        if self.attention is not None:
            pooled = self.attention(embedded, mask)  # [B, H * D]
        else:
            pooled = position_weighted_mean(embedded, mask,
                                            self._hparams.history_position_decay)  # [B, D]
        parts = [pooled]
        if self._hparams.history_last_items:
            parts.append(last_items(embedded, mask, self._hparams.history_last_items))
        if self._hparams.use_user_id:
            parts.append(self.user_embedding(self.user_lookup(inputs[features.USER_ID])))
        if self.recency_embedding is not None:
            parts.append(self.recency_embedding(
                recency_bucket(inputs[features.SECONDS_SINCE_PREVIOUS_CLICK])))
        for name, kind, embedding in self.context_features:
            if embedding is None:  # float: one signed-log column
                value = tf.cast(inputs[name], tf.float32)[:, None]
                parts.append(tf.sign(value) * tf.math.log1p(tf.abs(value)))
            else:
                parts.append(embedding(feature_tokens(inputs[name], kind)))
        return tf.concat(parts, axis=-1)

    def embed(self, representation: tf.Tensor) -> tf.Tensor:
        """Query embeddings `[B, D]` from `representation(inputs)`."""
        hidden = representation
        for layer in self.hidden:
            hidden = layer(hidden)
        return _normalise(self.projection(hidden), self._hparams.similarity)


def popularity_features(counts: list[float], recent_counts: list[float]) -> np.ndarray:
    """Per-item popularity features `[N + 1, 2]` (row 0: the OOV bucket).

    log1p of the all-time and the recent click count, each scaled to [0, 1].
    """
    table = np.zeros((len(counts) + 1, 2), np.float32)
    for column, values in enumerate((counts, recent_counts)):
        logs = np.log1p(np.asarray(values, np.float64))
        table[1:, column] = logs / max(float(logs.max()), 1e-9) if len(values) else 0.0
    return table


def hashed_token_table(token_lists: list[list[str]], buckets: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Hashes each item's tokens into `buckets` ids, as a ragged table.

    Returns `(values, row_splits)` of an int64 RaggedTensor `[N + 1, None]`:
    row 0 (the OOV bucket) is empty and row i + 1 holds item i's token ids
    (`tf.strings.to_hash_bucket_fast`, the same hash at training and serving).
    """
    lengths = [0] + [len(tokens) for tokens in token_lists]
    flat = [token for tokens in token_lists for token in tokens]
    values = (tf.strings.to_hash_bucket_fast(tf.constant(flat, tf.string), buckets).numpy()
              if flat else np.zeros([0], np.int64))
    return values.astype(np.int64), np.cumsum([0] + lengths).astype(np.int64)


def item_token_tables(item_features: dict, num_items: int, buckets: int,
                      padding_row: bool = False, oov_rows: int = 1
                      ) -> list[tuple[int, str, np.ndarray, np.ndarray]]:
    """`hashed_token_table` of every catalogue feature, in name order.

    Returns (position, name, values, row_splits) per feature: `oov_rows`
    empty OOV rows, then the items; with `padding_row` one more empty row in
    front, matching the history lookup (padding 0, OOV 1 .. K, items), so the
    lookup's index is the table's row. Raises if a feature does not have one
    token list per vocabulary item.
    """
    # hashed_token_table puts one more empty row in front itself.
    empty_rows = int(padding_row) + check_oov_buckets(oov_rows) - 1
    tables = []
    for n, name in enumerate(sorted(item_features)):
        token_lists = item_features[name]
        if len(token_lists) != num_items:
            raise ValueError(f"item feature {name!r}: {len(token_lists)} rows for "
                             f"{num_items} vocabulary items; expected one per item")
        rows = [[] for _ in range(empty_rows)] + list(token_lists)
        tables.append((n, name, *hashed_token_table(rows, buckets)))
    return tables


def freshness_features(first_timestamps: list[float], counts: list[float],
                       newest_timestamp: float) -> np.ndarray:
    """Per-item freshness `[N + 1, 1]`: 1 - log1p(age in days) / log1p(max age).

    Age is measured from the item's first training click to the newest one;
    an item with no training click (a catalogue item) counts as brand new (1).
    Row 0, the OOV bucket, is 0.
    """
    table = np.zeros((len(first_timestamps) + 1, 1), np.float32)
    if not len(first_timestamps):
        return table
    first = np.asarray(first_timestamps, np.float64)
    clicked = np.asarray(counts, np.float64) > 0
    ages = np.where(clicked, np.maximum(newest_timestamp - first, 0.0) / 86400.0, 0.0)
    logs = np.log1p(ages)
    table[1:, 0] = 1.0 - logs / max(float(logs.max()), 1e-9)
    return table


class CandidateTower(tf.keras.Model):
    """Maps item ids `[B]` to embeddings `[B, D]`.

    The item's id embedding, plus (each optional, see HParams):
      * popularity: its scaled log all-time and recent click counts, projected;
      * freshness: how recently it was first clicked, projected;
      * side features (catalogue join, `VocabStats` ``item_features.tsv``):
        per feature, the mean embedding of its tokens hashed into
        `item_feature_buckets` buckets (DSSM-style hashing; genres are one
        token each, titles their words). Items with no tokens add nothing.
    Side information is stored per vocabulary row, so the served tower still
    takes only item ids.

    Unknown ids map to one OOV row whatever the vocabulary's
    `num_oov_buckets`: the tower only ever embeds vocabulary items for the
    index and serving, so its OOV row is reached only by training clicks on
    items cut from the vocabulary, whose embedding is never served. K rows
    there (and K empty rows in every per-item table) would only split those
    clicks' never-served targets. With
    `shared_history` the id embedding is the history table's row, found by
    the history lookup, so those clicks then use its OOV buckets.
    """

    def __init__(self, item_ids: list[str], hparams: HParams,
                 item_counts: list[float] | None = None,
                 item_recent_counts: list[float] | None = None,
                 item_features: dict[str, list[list[str]]] | None = None,
                 item_first_timestamps: list[float] | None = None,
                 newest_timestamp: float = 0.0,
                 shared_history: QueryTower | None = None):
        super().__init__()
        self._hparams = hparams
        dim = hparams.embedding_dim
        self.item_lookup = tf.keras.layers.StringLookup(
            vocabulary=item_ids, mask_token=None, num_oov_indices=1)
        self.item_embedding = tf.keras.layers.Embedding(
            len(item_ids) + 1, dim,
            embeddings_initializer=tf.keras.initializers.RandomNormal(
                stddev=0.05, seed=hparams.seed + 1))
        # share_item_embeddings: the item's id embedding is its row of the query
        # tower's history table (same vocabulary, that table's own indexing);
        # `item_embedding` is then never built.
        self.shared_lookup = shared_history.history_lookup if shared_history else None
        self.shared_embedding = shared_history.history_embedding if shared_history else None
        dense_columns = []
        if hparams.use_popularity_features:
            if item_counts is None or item_recent_counts is None:
                raise ValueError("use_popularity_features needs item_counts and "
                                 "item_recent_counts")
            dense_columns.append(popularity_features(item_counts, item_recent_counts))
        if hparams.use_freshness_features:
            if item_first_timestamps is None or item_counts is None:
                raise ValueError("use_freshness_features needs the items' first click times "
                                 "(VocabStats item_stats.tsv) and counts")
            dense_columns.append(freshness_features(item_first_timestamps, item_counts,
                                                    newest_timestamp))
        self.dense_features = None
        if dense_columns:
            self.dense_features = tf.constant(np.concatenate(dense_columns, axis=1))
            self.dense_projection = tf.keras.layers.Dense(
                dim, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=hparams.seed + 2))
        self.side_feature_names = []
        self.side_tables = []
        self.side_embeddings = []
        if hparams.use_item_side_features and item_features:
            for n, name, values, splits in item_token_tables(
                    item_features, len(item_ids), hparams.item_feature_buckets):
                self.side_feature_names.append(name)
                self.side_tables.append((tf.constant(values), tf.constant(splits)))
                self.side_embeddings.append(tf.keras.layers.Embedding(
                    hparams.item_feature_buckets, dim, name=f"{name}_embedding",
                    embeddings_initializer=tf.keras.initializers.RandomNormal(
                        stddev=0.05, seed=hparams.seed + 20 + n)))

    def call(self, item_id: tf.Tensor) -> tf.Tensor:
        index = self.item_lookup(item_id)
        if self.shared_embedding is not None:
            embedding = self.shared_embedding(self.shared_lookup(item_id))
        else:
            embedding = self.item_embedding(index)
        if self.dense_features is not None:
            embedding += self.dense_projection(tf.gather(self.dense_features, index))
        for (values, splits), table in zip(self.side_tables, self.side_embeddings, strict=True):
            embedding += mean_token_embedding(values, splits, table, index)
        return _normalise(embedding, self._hparams.similarity)
