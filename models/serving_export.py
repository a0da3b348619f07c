"""The serving SavedModels: trained towers plus a top-K index over all candidates.

Two exports from one set of towers:
  * ``scann``: the candidate index is an embedded ScaNN searcher (ops in the
    ``Scann`` namespace; needs a model server with ScaNN ops linked in);
  * ``brute_force``: exact dot products and `tf.math.top_k`, pure TF ops,
    loads in stock TF Serving of the same TF version.

Signatures (the serving contract, docs/tf-serving.md):
  * ``serving_default(user_id [B], history [B, L]) -> item_ids [B, K], scores [B, K]``,
    best first, the request's history items excluded (the most recent
    `exclude_history` of them); if an approximate search finds fewer than K
    unseen items the row ends in ``("", -inf)`` entries;
  * ``query_embedding(user_id, history) -> embedding [B, D]``;
  * ``serve_tf_examples(examples [B] serialized tf.Example) -> item_ids, scores``;
  * with a ranker, ``reranked``: serving_default's inputs and outputs, the
    merged list's top `ranking.rerank_depth` ordered by the DeepFM ranker.
A model trained with query features (recency, declared user/context
features: `features.query_input_specs`) takes them as further named inputs
of ``serving_default`` and ``query_embedding`` (and reads them from the
examples of ``serve_tf_examples``); the metadata asset lists every input.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import features, scann_tuning  # noqa: E402
from models.channels import store as channels_store  # noqa: E402
from models.channels.serving import MergedServingModule  # noqa: E402
from models.config import ScannConfig  # noqa: E402
from models.ranking.ranker import Ranker  # noqa: E402
from models.scann_index import ScannIndex  # noqa: E402
from models.towers_export import Towers  # noqa: E402

EXPORT_KINDS = ("scann", "brute_force")
METADATA_ASSET = "retrieval_export.json"
RERANKED_SIGNATURE = "reranked"
PROBE_QUERIES = 500
# The ScaNN settings are chosen on one set of probe queries and the exported
# index's recall is measured on another, so ann_recall@K is not the sweep's own.
CHOICE_SEED, RECALL_SEED = 1, 0


def recent_mask(history: tf.Tensor, count: int) -> tf.Tensor:
    """bool `[B, L]`: True at the `count` most recent non-padding items of each row.

    Same items as `features.recent_history(history, count)` but without ragged
    ops: a reversed running count of real items marks the last `count` of them.
    Measured at batch 1 (10-item history, 110 candidates): 0.06 ms instead of
    0.17 ms for the ragged version.
    """
    real = tf.not_equal(history, features.PADDING)
    from_end = tf.cumsum(tf.cast(real, tf.int32), axis=1, reverse=True)
    return tf.logical_and(real, from_end <= count)


def mask_seen(ids: tf.Tensor, scores: tf.Tensor, history: tf.Tensor,
              exclude_history: int) -> tf.Tensor:
    """Sets to -inf the scores of `ids` `[B, N]` found among the request's
    `exclude_history` most recent `history` `[B, L]` items."""
    history = tf.convert_to_tensor(history, tf.string)
    recent = recent_mask(history, exclude_history)  # [B, L]
    seen = tf.reduce_any(
        tf.logical_and(tf.equal(ids[:, :, None], history[:, None, :]), recent[:, None, :]),
        axis=-1)
    return tf.where(seen, tf.constant(float("-inf")), scores)


def fetch_k(top_k: int, exclude_history: int, num_items: int) -> int:
    """Neighbours the index returns: K plus room for the excluded history items."""
    return min(top_k + exclude_history, num_items)


class RetrievalServingModule(tf.Module):
    """Query tower + candidate index with the serving signatures."""

    def __init__(self, towers: Towers, kind: str, top_k: int, exclude_history: int,
                 scann_settings: ScannConfig | None = None,
                 candidate_embeddings: tf.Tensor | None = None):
        super().__init__()
        if kind not in EXPORT_KINDS:
            raise ValueError(f"export kind {kind!r}: expected one of {EXPORT_KINDS}")
        self.towers_module = towers.module
        num_items = towers.vocab.num_items
        self.top_k = min(top_k, num_items)
        self._fetch_k = fetch_k(top_k, exclude_history, num_items)
        self.exclude_history = exclude_history
        self.query_specs = towers.query_specs
        self._example_spec = {
            features.USER_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
            features.HISTORY: tf.io.VarLenFeature(tf.string),
            **features.extra_parsing_spec(self.query_specs[2:])}
        # Signature inputs follow the model's query inputs.
        self.serve = tf.function(self._retrieve, input_signature=self.query_specs)
        self.query_embedding = tf.function(self._query_embedding,
                                           input_signature=self.query_specs)
        item_ids = tf.constant(towers.vocab.item_ids)
        embeddings = (towers.candidate_embeddings() if candidate_embeddings is None
                      else candidate_embeddings)
        if kind == "scann":
            self.index = ScannIndex(embeddings, item_ids, self._fetch_k,
                                    scann_settings or ScannConfig())
            self.candidate_embeddings = None
        else:
            self.index = None
            self.candidate_embeddings = tf.Variable(embeddings, trainable=False)
            self.item_ids = tf.Variable(item_ids, trainable=False)

    def _search(self, query: tf.Tensor):
        if self.index is not None:
            return self.index(query)
        scores = tf.matmul(query, self.candidate_embeddings, transpose_b=True)
        top_scores, top_index = tf.math.top_k(scores, k=self._fetch_k)
        return top_scores, tf.gather(self.item_ids, top_index)

    def _retrieve(self, *inputs):
        history = inputs[1]
        query = self.towers_module.query_embedding(*inputs)["embedding"]
        scores, ids = self._search(query)  # [B, fetch_k]
        scores = mask_seen(ids, scores, history, self.exclude_history)
        # An approximate search may return fewer than fetch_k neighbours (the
        # searched leaves hold fewer items): pad with ("", -inf) up to K.
        pad = tf.maximum(self.top_k - tf.shape(scores)[1], 0)
        scores = tf.pad(scores, [[0, 0], [0, pad]], constant_values=float("-inf"))
        ids = tf.pad(ids, [[0, 0], [0, pad]], constant_values=features.PADDING)
        best, order = tf.math.top_k(scores, k=self.top_k)
        return {"item_ids": tf.gather(ids, order, batch_dims=1), "scores": best}

    def _query_embedding(self, *inputs):
        return self.towers_module.query_embedding(*inputs)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(self, examples):
        return self._retrieve(*features.query_inputs_from_examples(
            examples, self._example_spec, self.query_specs))


def probe_queries(towers: Towers, num_queries: int = PROBE_QUERIES, seed: int = RECALL_SEED
                  ) -> tf.Tensor:
    """float32 `[num_queries, D]`: the query tower over random 5-item
    histories drawn from the 2000 most clicked candidates (a stand-in for
    real traffic that needs no eval data at export time)."""
    rng = np.random.default_rng(seed)
    top = min(2000, towers.vocab.num_items)
    histories = [[towers.vocab.item_ids[i] for i in rng.integers(0, top, size=5)]
                 for _ in range(num_queries)]
    extra = features.default_query_inputs(towers.query_specs[2:], num_queries)
    return towers.query_embeddings(["recall-probe"] * num_queries, histories, extra)


def measure_ann_recall(module: RetrievalServingModule, towers: Towers,
                       num_queries: int = PROBE_QUERIES, seed: int = RECALL_SEED,
                       top_k: int | None = None) -> float:
    """Recall@top_k (default: the module's) of the module's index against
    exact search, on `probe_queries`."""
    top_k = top_k or module.top_k
    queries = probe_queries(towers, num_queries, seed)
    exact = tf.math.top_k(tf.matmul(queries, towers.candidate_embeddings(), transpose_b=True),
                          top_k).indices
    exact_ids = tf.gather(tf.constant(towers.vocab.item_ids), exact).numpy()
    _, found = module._search(queries)
    found = found.numpy()[:, :top_k]
    return float(np.mean([len(set(a) & set(b)) / top_k
                          for a, b in zip(exact_ids, found, strict=True)]))


def export(towers_dir: str, output_dir: str, kind: str, channels_dir: str | None = None,
           ranker_dir: str | None = None) -> dict:
    """Builds and saves one serving export with the towers' `model.export`
    settings (top K, history exclusion, ScaNN).

    Args:
      towers_dir: the Trainer's towers SavedModel.
      output_dir: where the serving SavedModel is written.
      kind: ``scann`` or ``brute_force``.
      channels_dir: recall channels fitted beside the towers (ChannelTrainer):
        then ``serving_default`` answers their merged list with a `channels`
        output, the two-tower search being one channel
        (models/channels/serving.py), and ``related_items`` is added.
      ranker_dir: a ranker trained on the same towers (RankerTrainer): the
        ``reranked`` signature is added, the merged list's top
        ``ranking.rerank_depth`` ordered by the ranker (without channels,
        the merged list is the two-tower channel's).

    Returns:
      The export metadata written to ``assets.extra/retrieval_export.json``.
    """
    towers = Towers(towers_dir)
    settings = towers.export
    embeddings = towers.candidate_embeddings()
    num_items, choice = towers.vocab.num_items, None
    recall = channels_store.load(channels_dir, towers_dir) if channels_dir else None
    ranker = Ranker.load(ranker_dir) if ranker_dir else None
    if ranker is not None and recall is None:
        recall = channels_store.towers_only(towers)
    # The two-tower search; with channels, one channel of the merge, as deep as its quota.
    depth = settings.top_k if recall is None else max(settings.top_k, max(
        max(quotas.values()) for quotas in recall.setting.quotas.values()))
    if kind == "scann" and scann_tuning.needs_sweep(settings.scann, num_items):
        # Settings left at 0 are chosen by measurement (models/scann_tuning.py).
        choice = scann_tuning.choose(
            embeddings.numpy(), probe_queries(towers, seed=CHOICE_SEED).numpy(),
            fetch_k(depth, settings.exclude_history, num_items), settings.scann,
            recall_k=min(settings.top_k, num_items))
    two_tower = RetrievalServingModule(towers, kind, depth, settings.exclude_history,
                                       choice.settings if choice else settings.scann, embeddings)
    # ScaNN builds its searcher lazily: call once so the index is in the graph.
    warmup = features.default_query_inputs(two_tower.query_specs)
    two_tower.serve(*(warmup[spec.name] for spec in two_tower.query_specs))
    module = (two_tower if recall is None
              else MergedServingModule(two_tower, recall, settings.top_k, ranker))
    signatures = {"serving_default": module.serve, "query_embedding": module.query_embedding,
                  "serve_tf_examples": module.serve_tf_examples}
    if recall is not None and hasattr(module, "related_items"):
        signatures["related_items"] = module.related_items
    if ranker is not None:
        signatures[RERANKED_SIGNATURE] = module.reranked
    options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"] if kind == "scann" else None)
    tf.saved_model.save(module, output_dir, signatures=signatures, options=options)
    outputs = {"item_ids": f"string [B, {module.top_k}]",
               "scores": f"float32 [B, {module.top_k}]"}
    if recall is not None:
        outputs["channels"] = f"string [B, {module.top_k}]"
    metadata = {
        "export": kind,
        "top_k": module.top_k,
        "exclude_history": two_tower.exclude_history,
        "max_history": towers.max_history,
        # The towers' embedding size, plus one with a trending prior.
        "embedding_dim": int(towers.contract["embedding_dim"]),
        "trending_prior_weight": towers.contract["prior_weight"],
        "num_candidates": towers.vocab.num_items,
        "inputs": {spec.name: f"{spec.dtype.name} [B{', L' if spec.shape.rank == 2 else ''}]"
                   for spec in module.query_specs},
        "outputs": outputs,
        # The merged channels and their weights/quotas per history bucket (None: two-tower only).
        "channels": list(recall.channels) if recall is not None else None,
        "merge": recall.setting.to_dict() if recall is not None else None,
        # The `reranked` signature's ranker (None: no such signature).
        "ranker": ({"rerank_depth": module.rerank_depth, "model": "DeepFM",
                    "users": len(ranker.user_ids), "report": ranker.report}
                   if ranker is not None else None),
        "needs_scann_ops": kind == "scann",
        "scann": (two_tower.index.settings.to_dict() if kind == "scann" else None),
        # The sweep behind the ScaNN settings (None: given, or an exact scan):
        # target, chosen row, recall/latency frontier and every measured setting.
        "scann_choice": choice.report if choice else None,
        # Brute force is exact by construction.
        f"ann_recall@{module.top_k}": (measure_ann_recall(two_tower, towers, top_k=module.top_k)
                                       if kind == "scann" else 1.0),
    }
    extra = os.path.join(output_dir, "assets.extra")
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, METADATA_ASSET), "w") as f:
        f.write(json.dumps(metadata, indent=2, sort_keys=True))
    return metadata
