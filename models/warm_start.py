"""Warm start: initialise a new model from an earlier model's towers.

The towers SavedModel carries ``warm_start.npz`` beside it: the id embedding
tables and every other tower weight in creation order. Vocabularies change
between runs, so id tables are copied row by row for the ids both
vocabularies hold (new ids keep their fresh initialisation); other weights are
copied when their shapes agree and skipped (and counted) when they do not,
e.g. after `embedding_dim` changed. The OOV rows are copied only when both
vocabularies have the same `num_oov_buckets` (with another count an unknown
id hashes to another bucket).
"""

from __future__ import annotations

import io
import logging
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

WEIGHTS_FILE = "warm_start.npz"


def weights_file(member: int = 0) -> str:
    """File name of ensemble member `member`'s weights (member 0: WEIGHTS_FILE)."""
    return WEIGHTS_FILE if member == 0 else f"warm_start-member-{member}.npz"

# (tower attribute, layer attribute, rows before the first vocabulary id given
# the vocabulary's `num_oov_buckets` K, vocab kind)
ID_TABLES = (
    ("query_tower", "history_embedding", lambda k: 1 + k, "item"),  # mask, K OOV rows
    ("query_tower", "user_embedding", lambda k: k, "user"),  # K OOV rows
    ("candidate_tower", "item_embedding", lambda k: 1, "item"),  # one OOV row
)


def id_variables(model) -> dict[str, tf.Variable]:
    """The id tables the model uses (a table of an unused input is never built)."""
    tables = {}
    for tower, layer, _, _ in ID_TABLES:
        embedding = getattr(getattr(model, tower), layer)
        if embedding.built:
            tables[f"{tower}.{layer}"] = embedding.embeddings
    return tables


def _other_variables(model, tower: str) -> list[tf.Variable]:
    # By identity: a ShardedVariable (ParameterServerStrategy) has no `ref()`.
    ids = {id(v) for v in id_variables(model).values()}
    return [v for v in getattr(model, tower).weights if id(v) not in ids]


def _value(variable) -> np.ndarray:
    """A variable's whole value; a ShardedVariable's shards concatenated."""
    return tf.convert_to_tensor(variable).numpy()


def save(path: str, model) -> None:
    """Writes the tower weights of `model` (a RetrievalModel or towers holder)."""
    arrays = {name: _value(v) for name, v in id_variables(model).items()}
    for tower in ("query_tower", "candidate_tower"):
        for n, variable in enumerate(_other_variables(model, tower)):
            arrays[f"{tower}.other.{n}"] = _value(variable)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def restore(model, towers_dir: str, old_vocab, new_vocab, member: int = 0) -> dict:
    """Copies matching weights from `towers_dir` into the built `model`.

    `member`: the ensemble member being initialised. It starts from the same
    member of the earlier model, or from its member 0 when that model had
    fewer members (e.g. a single model before `ensemble_size` was raised).

    Returns counts: ids copied per table, other weights copied and skipped,
    and the earlier model's member the weights came from.
    """
    source = member
    if member and not tf.io.gfile.exists(os.path.join(towers_dir, weights_file(member))):
        source = 0
    path = os.path.join(towers_dir, weights_file(source))
    if not tf.io.gfile.exists(path):
        raise ValueError(f"warm start from {towers_dir!r}: no {WEIGHTS_FILE}; expected a "
                         "towers model saved by this project's trainer")
    with tf.io.gfile.GFile(path, "rb") as f:
        saved = dict(np.load(io.BytesIO(f.read())))
    report = {"ids_copied": {}, "weights_copied": 0, "weights_skipped": 0,
              "from_member": source}
    variables = id_variables(model)
    for tower, layer, head_rows, kind in ID_TABLES:
        name = f"{tower}.{layer}"
        if name not in variables or name not in saved:
            continue
        old_ids = old_vocab.item_ids if kind == "item" else old_vocab.user_ids
        new_ids = new_vocab.item_ids if kind == "item" else new_vocab.user_ids
        # Each model's own OOV bucket count places its first vocabulary row.
        old_offset = head_rows(old_vocab.num_oov_buckets)
        offset = head_rows(new_vocab.num_oov_buckets)
        old_rows = {value: n + old_offset for n, value in enumerate(old_ids)}
        table, old = _value(variables[name]), saved[name]
        if table.shape[1] != old.shape[1]:
            report["weights_skipped"] += 1
            continue
        pairs = [(n + offset, old_rows[value]) for n, value in enumerate(new_ids)
                 if value in old_rows]
        if offset == old_offset:  # another K hashes unknown ids to other buckets
            table[:offset] = old[:offset]
        if pairs:
            new_index, old_index = (np.array(p) for p in zip(*pairs, strict=True))
            table[new_index] = old[old_index]
        variables[name].assign(table)
        report["ids_copied"][name] = len(pairs)
    for tower in ("query_tower", "candidate_tower"):
        for n, variable in enumerate(_other_variables(model, tower)):
            old = saved.get(f"{tower}.other.{n}")
            if old is not None and old.shape == tuple(variable.shape):
                variable.assign(old)
                report["weights_copied"] += 1
            else:
                report["weights_skipped"] += 1
    logging.info("warm start from %s: %s", towers_dir, report)
    return report
