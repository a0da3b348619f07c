"""Evaluating trained towers and the baselines on the same eval clicks.

`evaluate` ranks the full candidate catalogue (the vocabulary in the towers)
for every eval click with every scorer: the model, all-time popularity,
recent popularity (VocabStats' trending window) and, when there is one, the
last blessed model; under each protocol of `evaluation.protocols`:

  * `fresh`: the query is the click's own history (every earlier click of
    the user), as a model served in real time sees it;
  * `frozen`: the query is the user's history when the eval period began
    (the examples' `history_at_cutoff`), the same for every eval click of the
    user, as recommendations computed at the cut-off and served until the
    next run see it.

`evaluate_scorers` is the scorer-agnostic part (benchmarks call it with
synthetic scorers); the ranking loop itself is
`models.topk_metrics.rank_clicks`, shared with early stopping and the prior's
calibration.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from components.topk_evaluator.config import (  # noqa: E402
    LAST_BLESSED,
    MODEL,
    POPULARITY,
    RECENT_POPULARITY,
    RERANKED,
    EvaluationConfig,
)
from components.topk_evaluator.scorers import extra_inputs, towers_scorer  # noqa: E402
from models import features, topk_metrics  # noqa: E402
from models.channels import store  # noqa: E402
from models.channels.recall import MERGED  # noqa: E402
from models.data import make_dataset  # noqa: E402
from models.ranking.ranker import Ranker  # noqa: E402
from models.ranking.training import PairBuilder, pair_metrics  # noqa: E402
from models.towers_export import Towers, query_specs_of, read_contract  # noqa: E402

Scorer = Callable[[dict], tf.Tensor]
# The recall channels' rows while they are ranked beside the scorers.
CHANNEL_PREFIX = "channel:"
# related_items is judged by next-click hit rate at this K.
RELATED_K = 20
ScoreBatch = Callable[[dict], dict]


def evaluate_scorers(batches: Iterable[dict], scorers: dict[str, Scorer] | ScoreBatch,
                     item_ids: list[str], item_counts, config: EvaluationConfig,
                     exclude_history: int) -> dict:
    """Streams eval click batches through every scorer.

    Args:
      batches: dicts with `user_id` `[B]`, `item_id` `[B]`, `history` `[B, L]`
        (most recent last, `""` padding).
      scorers: {name: batch -> float32 `[B, N]` scores over `item_ids`}, or
        one function batch -> {name: scores} (scorers sharing work per batch).
      item_ids: the N candidates, in score-column order.
      item_counts: `[N]` training clicks per candidate (popularity buckets).
      config: cut-offs and breakdown settings.
      exclude_history: the click's most recent history items removed from
        every ranking (the model's `model.export.exclude_history`).

    Returns:
      {"num_examples", "num_candidates", "exclude_history", "metrics":
      {scorer: {metric: value}}, "recall_curves": {scorer: [recall@1 .. recall@max K]},
      "breakdowns": {scorer: {breakdown: {group: {...}}}}}.
    """
    buckets = topk_metrics.popularity_buckets(item_counts, config.head_click_share,
                                              config.torso_click_share)
    counts = np.asarray(item_counts, np.float64)

    def groups(batch: dict, target_index: np.ndarray) -> dict[str, list]:
        history = tf.convert_to_tensor(batch[features.HISTORY])
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(history, features.PADDING), tf.int32),
                                axis=1).numpy()
        return {
            "history": [topk_metrics.history_bucket(int(n), config.short_history_max)
                        for n in lengths],
            # Clicks on items outside the catalogue have no popularity bucket.
            "item_popularity": [topk_metrics.POPULARITY_BUCKETS[buckets[i]] if i >= 0 else None
                                for i in target_index],
            # An item without a training click: outside the catalogue, or a
            # catalogue item nobody clicked before the cut-off.
            "item_freshness": ["known" if i >= 0 and counts[i] > 0 else "new"
                               for i in target_index],
        }

    score_batch = (scorers if callable(scorers)
                   else lambda batch: {name: score(batch) for name, score in scorers.items()})
    ranked = topk_metrics.rank_clicks(
        batches, score_batch, item_ids, config.ks, exclude_history, group_batch=groups,
        max_rows=config.batch_size)
    if not ranked:
        raise ValueError("evaluation: no eval example to evaluate on")
    return {
        "num_examples": next(iter(ranked.values())).examples,
        "num_candidates": len(item_ids),
        "exclude_history": exclude_history,
        "metrics": {name: ranked[name].metrics() for name in ranked},
        "recall_curves": {name: ranked[name].recall_curve() for name in ranked},
        "breakdowns": {name: ranked[name].breakdowns() for name in ranked},
    }


def frozen_batches(batches: Iterable[dict]) -> Iterable[dict]:
    """The batches with each click's history replaced by `history_at_cutoff`."""
    for batch in batches:
        yield {**batch, features.HISTORY: batch[features.HISTORY_AT_CUTOFF]}


def history_read_length(towers: Towers, short_history_max: int) -> int:
    """History items read per eval click for `towers`: enough for its input,
    its history exclusion and the `short`/`long` history buckets."""
    return max(towers.export.exclude_history, short_history_max + 1, towers.max_history)


def eval_batches(eval_files, batch_size: int, read_length: int,
                 extra_specs: list[tf.TensorSpec], protocol: str) -> Iterable[dict]:
    """Eval click batches as `protocol` queries them: `history` (and
    `history_at_cutoff`) `[B, read_length]`, plus the `extra_specs` inputs."""
    specs = [spec for spec in extra_specs if spec.name != features.HISTORY_AT_CUTOFF]
    # The frozen history is read as a list feature of the same length.
    specs.append(tf.TensorSpec([None, None], tf.string, name=features.HISTORY_AT_CUTOFF))

    def dataset():
        for batch in make_dataset(eval_files, batch_size, read_length, shuffle=False,
                                  extra_specs=specs):
            batch[features.HISTORY_AT_CUTOFF] = features.recent_history(
                batch[features.HISTORY_AT_CUTOFF], read_length)
            yield batch

    return frozen_batches(dataset()) if protocol == "frozen" else dataset()


def evaluate(towers_dir: str, eval_files, config: EvaluationConfig,
             baseline_towers_dir: str | None = None, channels_dir: str | None = None,
             ranker_dir: str | None = None) -> dict:
    """Metrics of the model, popularity baselines and last blessed model.

    Args:
      towers_dir: the new towers SavedModel (its vocabulary is the catalogue;
        its `model.export.exclude_history` the seen items excluded).
      eval_files: glob(s) of eval example files.
      config: evaluation settings.
      baseline_towers_dir: the last blessed towers, if any (`last_blessed`).
      channels_dir: the recall channels fitted beside the towers, if any
        (ChannelTrainer's output). Their merged list is what the exports
        serve, so it is the `model` row (the blessing judges it); each
        channel alone (`two_tower`: the towers), and the merge without each
        one, are ranked on the same clicks and reported apart under
        "channels", with the merge's settings.
      ranker_dir: RankerTrainer's ranker, if any: the `reranked` row is the
        `model` row's list with its top `ranking.rerank_depth` ordered by
        the ranker, and "ranking" holds the ranker's AUC and log loss on
        the eval clicks against negatives drawn as in its training
        (`ranking_metrics`) and its training report.

    Returns:
      {"protocols": {name: `evaluate_scorers`' result}} for every protocol of
      `config.protocols`, with the blessing protocol's result also at the top
      level (`metrics`, `recall_curves`, `breakdowns`, ...), its name under
      "protocol", and "recent_popularity_source".
    """
    towers = Towers(towers_dir)
    vocab = towers.vocab
    candidates = towers.candidate_embeddings()  # [N, D]
    exclude_history = towers.export.exclude_history

    def model(batch):
        query = towers.query_embeddings(batch[features.USER_ID], batch[features.HISTORY],
                                        extra_inputs(towers.query_specs, batch))
        return tf.matmul(query, candidates, transpose_b=True)

    scorers: dict[str, Scorer] = {
        MODEL: model,
        POPULARITY: topk_metrics.popularity_scorer(vocab.item_counts),
        RECENT_POPULARITY: topk_metrics.popularity_scorer(vocab.item_recent_counts)}
    read_length = history_read_length(towers, config.short_history_max)
    extra_specs = {spec.name: spec for spec in towers.query_specs[2:]}
    if baseline_towers_dir:
        scorers[LAST_BLESSED] = towers_scorer(baseline_towers_dir, vocab.item_ids)
        contract = read_contract(baseline_towers_dir)
        read_length = max(read_length, int(contract["max_history"]))
        extra_specs.update({spec.name: spec for spec in query_specs_of(contract)[2:]})

    recall = store.load(channels_dir, towers_dir) if channels_dir else None
    ranker = Ranker.load(ranker_dir) if ranker_dir else None
    if ranker is not None:
        read_length = max(read_length, ranker.config.max_history)

    def score_batch(batch: dict) -> dict:
        scores = {name: score(batch) for name, score in scorers.items()}
        if recall is not None:
            # The model scorer is the towers: the merge's two-tower channel reuses its scores.
            towers_scores = scores[MODEL]
            channel_scores = recall.score_batch(batch, given={"two_tower": (
                towers_scores.numpy(), np.ones(int(towers_scores.shape[0]), bool))})
            channel_scores["two_tower"] = towers_scores
            scores[MODEL] = tf.constant(channel_scores.pop(MERGED))
            scores.update({CHANNEL_PREFIX + name: tf.constant(values)
                           for name, values in channel_scores.items()})
        if ranker is not None:
            scores[RERANKED] = tf.constant(ranker.rerank(batch, scores[MODEL].numpy()))
        return scores

    result: dict = {"protocols": {}}
    channels: dict = {"protocols": {}}
    for protocol in config.protocols:
        batches = eval_batches(eval_files, config.batch_size, read_length,
                               list(extra_specs.values()), protocol)
        outcome = evaluate_scorers(batches, score_batch, vocab.item_ids, vocab.item_counts,
                                   config, exclude_history)
        result["protocols"][protocol], channels["protocols"][protocol] = split_channels(outcome)
    if recall is not None:
        channels.update(channels=list(recall.channels), merge=recall.reports,
                        fit=recall.fit_reports)
        if recall.related is not None:
            channels["related_items"] = recall.related_hits(
                eval_batches(eval_files, config.batch_size, read_length,
                             list(extra_specs.values()), "fresh"), RELATED_K)
        result["channels"] = channels
    if ranker is not None:
        result["ranking"] = ranking_metrics(
            ranker, recall if recall is not None else store.towers_only(towers),
            vocab.item_counts, eval_batches(eval_files, config.batch_size, read_length,
                                            list(extra_specs.values()), "fresh"))
    result["model_is"] = ("the merged recall channels " + ", ".join(recall.channels)
                          if recall is not None else "the two-tower model")
    result.update(result["protocols"][config.blessing_protocol])
    result["protocol"] = config.blessing_protocol
    result["recent_popularity_source"] = recent_popularity_source(vocab.stats)
    return result


def ranking_metrics(ranker: Ranker, recall, item_counts, batches: Iterable[dict]) -> dict:
    """The ranker's AUC and log loss on the eval clicks (each against
    negatives drawn as in its training, from `recall`'s merged list and the
    catalogue), its re-ranking depth and its training report."""
    builder = PairBuilder(ranker, recall, item_counts, ranker.config, ranker.config.seed + 1)
    result = pair_metrics(ranker, builder.pairs(batches))
    result.update(skipped_clicks=builder.skipped, rerank_depth=ranker.config.rerank_depth,
                  training=ranker.report)
    return result


def split_channels(outcome: dict) -> tuple[dict, dict]:
    """(`outcome` without the channel rows, the channel rows' metrics and
    breakdowns keyed without their prefix)."""
    def is_channel(name: str) -> bool:
        return name.startswith(CHANNEL_PREFIX)

    rest = {key: ({name: v for name, v in value.items() if not is_channel(name)}
                  if key in ("metrics", "recall_curves", "breakdowns") else value)
            for key, value in outcome.items()}
    channel_rows = {key: {name[len(CHANNEL_PREFIX):]: v for name, v in outcome[key].items()
                          if is_channel(name)}
                    for key in ("metrics", "breakdowns")}
    return rest, channel_rows


def recent_popularity_source(stats: dict) -> str:
    """Where recent popularity comes from, in words (for the report)."""
    window = ""
    if "recent_start_timestamp" in stats:
        window = f" at or after unix time {stats['recent_start_timestamp']}"
        fraction = (stats.get("config") or {}).get("recent_fraction")
        if fraction is not None:
            window += f", the last {fraction:g} of the training period"
    # Ties in recent counts (items with no recent click) fall back to the
    # vocabulary order, i.e. all-time popularity.
    return (f"VocabStats recent-window click counts (training clicks{window}); ties by "
            "all-time popularity")


def ann_requests(eval_files, count: int, history_length: int,
                 extra_specs: list[tf.TensorSpec] | None = None
                 ) -> tuple[list[str], list[list[str]], dict[str, list]]:
    """The first `count` eval clicks as serving requests: (user ids,
    histories, {extra query input: one value or token list per request})."""
    users: list[str] = []
    histories: list[list[str]] = []
    extra: dict[str, list] = {spec.name: [] for spec in extra_specs or []}
    for batch in make_dataset(eval_files, min(count, 1024), history_length, shuffle=False,
                              extra_specs=extra_specs):
        rows = min(count - len(users), int(batch[features.USER_ID].shape[0]))
        users += [user.decode() for user in batch[features.USER_ID].numpy()[:rows]]
        histories += [[h.decode() for h in history if h]
                      for history in batch[features.HISTORY].numpy()[:rows]]
        for name, values in extra.items():
            for value in batch[name].numpy()[:rows]:
                if isinstance(value, np.ndarray):  # a token list, padded with b""
                    value = [token.decode() for token in value if token]
                elif isinstance(value, bytes):
                    value = value.decode()
                values.append(value.item() if isinstance(value, np.generic) else value)
        if len(users) == count:
            break
    return users, histories, extra
