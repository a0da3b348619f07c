"""The item2vec channel: item vectors from skip-gram with negative sampling
over sessions of each user's clicks (Barkan and Koenigstein, "Item2Vec",
2016; Grbovic and Cheng, "Real-time Personalization using Embeddings for
Search Ranking at Airbnb", KDD 2018), trained with TensorFlow.

Sessions: each user's candidate clicks in time order, cut where two clicks
are more than `session_gap_hours` apart (0: one session per user). Pairs:
every two clicks of a session at most `window` apart, both ways; with
`global_context`, also every click with its session's last click (Airbnb's
booking as global context). Each pair's loss is
`-log s(v_c . u_x) - sum_n log s(-v_c . u_n)` over `negatives` items drawn
by count ** `sampling_power`, of which `same_category_negatives` come from
the context item's own category (Airbnb's same-market negatives).

An item has a centre vector v and a context vector u. A request is the
mean centre vector of its `pool_items` most recent history items (those
with one) and scores every item by `mean_v . u`, the model's own logit of
that item as a context of the history: with negatives drawn uniformly
(`sampling_power` 0, the default) the logit keeps how often an item is a
context at all, which on MovieTweetings is what next clicks follow (the
cosine of centre vectors, and word2vec's count ** 0.75 negatives, rank
next clicks several times worse: docs/item2vec.md). Related items are the
same logit from one item. Items that were never the centre of a pair have
no vector: they score `NO_VECTOR`, below any logit; a request without a
history item that has one is not answered.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features  # noqa: E402
from models.channels.base import Requests  # noqa: E402
from models.channels.clicks import NOT_A_CANDIDATE, Catalogue, Clicks, as_array  # noqa: E402
from models.channels.config import Item2VecChannelConfig  # noqa: E402
from models.channels.item_cf import keep_largest  # noqa: E402

HOUR = 3600.0
# The score of an item without a vector: below every logit.
NO_VECTOR = -1e9


def sessions(clicks: Clicks, gap_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """(candidate index of each click, session number of each click), clicks
    grouped by user in time order; outside-catalogue clicks dropped."""
    keep = clicks.items != NOT_A_CANDIDATE
    users, items, times = clicks.users[keep], clicks.items[keep], clicks.timestamps[keep]
    order = np.lexsort((times, users))  # by user, then time (stable)
    users, items, times = users[order], items[order], times[order]
    new = np.ones(len(items), bool)
    if len(items):
        new[1:] = users[1:] != users[:-1]
        if gap_hours > 0:
            new[1:] |= np.diff(times) > gap_hours * HOUR
    return items, np.cumsum(new) - 1


def pairs(items: np.ndarray, session: np.ndarray, window: int, global_context: bool
          ) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) index arrays of the skip-gram pairs (module docstring)."""
    centres, contexts = [], []
    for offset in range(1, window + 1):
        same = session[:-offset] == session[offset:]
        first, second = items[:-offset][same], items[offset:][same]
        centres += [first, second]
        contexts += [second, first]
    if global_context and len(items):
        last = np.ones(len(items), bool)
        last[:-1] = session[1:] != session[:-1]
        last_item = items[last][session]  # each click's session's last item
        # Clicks more than `window` before their session's end: the window
        # pairs do not already hold the last item as their context.
        ends = np.flatnonzero(last)
        position_from_end = ends[session] - np.arange(len(items))
        extra = position_from_end > window
        centres.append(items[extra])
        contexts.append(last_item[extra])
    if not centres:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    centre, context = np.concatenate(centres), np.concatenate(contexts)
    distinct = centre != context
    return centre[distinct].astype(np.int64), context[distinct].astype(np.int64)


def item_categories(item_features: dict | None, name: str, num_items: int) -> np.ndarray:
    """int `[N]`: each item's first token of feature `name` as a category
    number, -1 without one (or without the feature)."""
    categories = np.full(num_items, -1, np.int64)
    if not item_features or name not in item_features:
        return categories
    numbers: dict[str, int] = {}
    for n, tokens in enumerate(item_features[name]):
        if tokens:
            categories[n] = numbers.setdefault(tokens[0], len(numbers))
    return categories


class NegativeSampler:
    """Negatives by count ** power, some from the positive's category."""

    def __init__(self, counts: np.ndarray, power: float, categories: np.ndarray,
                 rng: np.random.Generator):
        weights = np.power(np.asarray(counts, np.float64), power)
        weights[counts <= 0] = 0.0
        self.cumulative = np.cumsum(weights / weights.sum())
        self.rng = rng
        members = np.flatnonzero(categories >= 0)
        order = members[np.argsort(categories[members], kind="stable")]
        self.members = order  # item indices grouped by category
        sizes = np.bincount(categories[members], minlength=int(categories.max(initial=-1)) + 1)
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.sizes = sizes
        self.categories = categories

    def draw(self, contexts: np.ndarray, total: int, same_category: int) -> np.ndarray:
        """int `[P, total]` negatives for pairs with these contexts."""
        draws = np.searchsorted(self.cumulative, self.rng.random((len(contexts), total)))
        draws = np.minimum(draws, len(self.cumulative) - 1)
        if same_category:
            category = self.categories[contexts]
            has = category >= 0
            size = self.sizes[category[has]]
            picks = np.floor(self.rng.random((int(has.sum()), same_category)) * size[:, None])
            draws[has, :same_category] = self.members[
                self.starts[category[has]][:, None] + picks.astype(np.int64)]
        return draws


def train_vectors(centre: np.ndarray, context: np.ndarray, num_items: int,
                  sampler: NegativeSampler, config: Item2VecChannelConfig,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(float32 `[N, dim]` centre embeddings, `[N, dim]` context embeddings,
    mean loss of each epoch)."""
    tf.random.set_seed(config.seed)
    scale = 0.5 / config.dim
    centre_table = tf.Variable(tf.random.uniform([num_items, config.dim], -scale, scale,
                                                 seed=config.seed))
    context_table = tf.Variable(tf.zeros([num_items, config.dim]))
    optimizer = tf.keras.optimizers.Adam(config.learning_rate)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64),
                                  tf.TensorSpec([None], tf.int64),
                                  tf.TensorSpec([None, None], tf.int64)])
    def step(c, x, n):
        with tf.GradientTape() as tape:
            v = tf.gather(centre_table, c)
            positive = tf.reduce_sum(v * tf.gather(context_table, x), axis=1)
            negative = tf.einsum("bd,bnd->bn", v, tf.gather(context_table, n))
            loss = tf.reduce_mean(tf.math.softplus(-positive)
                                  + tf.reduce_sum(tf.math.softplus(negative), axis=1))
        variables = [centre_table, context_table]
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    losses = []
    for _ in range(config.epochs):
        order = rng.permutation(len(centre))[:config.max_pairs]
        negatives = sampler.draw(context[order], config.negatives,
                                 config.same_category_negatives)
        total, steps = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            part = order[start:start + config.batch_size]
            total += float(step(centre[part], context[part],
                                negatives[start:start + config.batch_size]))
            steps += 1
        losses.append(round(total / max(steps, 1), 4))
    return centre_table.numpy(), context_table.numpy(), losses


def recent_items(history, catalogue: Catalogue, has_vector: np.ndarray, limit: int
                 ) -> list[list[int]]:
    """Each history's `limit` most recent distinct catalogue items with a vector."""
    result = []
    for row in history:
        chosen: list[int] = []
        for item in reversed(list(row)):
            item = item.decode() if isinstance(item, bytes) else item
            n = catalogue.index.get(item, -1) if item else -1
            if n >= 0 and has_vector[n] and n not in chosen:
                chosen.append(n)
                if len(chosen) == limit:
                    break
        result.append(chosen)
    return result


class Item2VecChannel:
    name = "item2vec"

    def __init__(self, vectors: np.ndarray, context: np.ndarray, has_vector: np.ndarray,
                 catalogue: Catalogue, pool_items: int, report: dict | None = None):
        self.has_vector = np.asarray(has_vector, bool)
        keep = self.has_vector[:, None]
        self.vectors = np.where(keep, vectors, 0.0).astype(np.float32)  # [N, dim] centre
        self.context = np.where(keep, context, 0.0).astype(np.float32)  # [N, dim]
        self.catalogue = catalogue
        self.pool_items = pool_items
        self.report = report or {}

    @classmethod
    def fit(cls, clicks: Clicks, catalogue: Catalogue, config: Item2VecChannelConfig,
            item_features: dict | None = None) -> Item2VecChannel:
        rng = np.random.default_rng(config.seed)
        items, session = sessions(clicks, config.session_gap_hours)
        centre, context = pairs(items, session, config.window, config.global_context)
        counts = np.bincount(items, minlength=clicks.num_items).astype(np.float64)
        categories = item_categories(item_features, config.category_feature, clicks.num_items)
        same = config.same_category_negatives if (categories >= 0).any() else 0
        sampler = NegativeSampler(counts if counts.sum() else np.ones(clicks.num_items),
                                  config.sampling_power, categories, rng)
        config = config.replace(same_category_negatives=same)
        vectors, contexts, losses = train_vectors(centre, context, clicks.num_items, sampler,
                                                  config, rng)
        has_vector = np.bincount(centre, minlength=clicks.num_items) > 0
        report = {"sessions": int(session.max() + 1) if len(session) else 0,
                  "pairs": int(len(centre)), "items_with_vector": int(has_vector.sum()),
                  "epoch_loss": losses}
        return cls(vectors, contexts, has_vector, catalogue, config.pool_items, report)

    def score(self, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
        history = as_array(requests.batch[features.HISTORY])
        pooled = np.zeros((len(requests), self.vectors.shape[1]), np.float32)
        chosen = recent_items(history, self.catalogue, self.has_vector, self.pool_items)
        for q, items in enumerate(chosen):
            if items:
                pooled[q] = self.vectors[items].mean(axis=0)
        scores = pooled @ self.context.T
        scores[:, ~self.has_vector] = NO_VECTOR
        return scores, np.array([bool(items) for items in chosen])

    def neighbours(self, count: int, chunk: int = 1024):
        """Each item with a vector: the `count` items with a vector of largest
        positive logit `v_item . u`, as a sparse `[N, N]` matrix (zero diagonal)."""
        blocks = []
        for start in range(0, len(self.vectors), chunk):
            block = self.vectors[start:start + chunk] @ self.context.T
            block[:, ~self.has_vector] = 0.0
            block[~self.has_vector[start:start + chunk]] = 0.0
            rows = np.arange(start, min(start + chunk, len(self.vectors)))
            block[rows - start, rows] = 0.0
            blocks.append(keep_largest(block, count))
        return scipy.sparse.vstack(blocks).tocsr()
