"""Saving and loading the trained towers (the Trainer's `Format-Serving` output).

The towers SavedModel is the hand-off between training and everything after
it (evaluation, index building, warm start). It holds two functions and
signatures:
  * `query_embedding(user_id [B], history [B, L], ...) -> embedding [B, D]`,
    with the history cut to the `max_history` most recent items inside; the
    model's extra query inputs (`models/towers/inputs`: recency, declared
    user/context features) are further named inputs;
  * `candidate_embedding(item_id [B]) -> embedding [B, D]`;
and, beside it, ``towers.json`` (the contract its consumers read: query
inputs, history length, embedding size, the export settings),
``model_config.json`` (the whole `ModelConfig`, with the prior weight the
Trainer chose) and a copy of the VocabStats files.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from clicklog.config import parse  # noqa: E402
from models import features  # noqa: E402
from models import vocab as vocab_lib  # noqa: E402
from models.config import ExportConfig, ModelConfig  # noqa: E402
from models.towers.inputs import query_input_specs  # noqa: E402

MODEL_CONFIG_FILE = "model_config.json"
CONTRACT_FILE = "towers.json"
VOCAB_DIR = "vocab"


class TowersModule(tf.Module):
    """Wraps trained Keras towers with fixed serving-friendly signatures.

    With a trending prior (`model.prior.weight` w > 0), both embeddings get
    one more dimension: `w` on the query side and `log1p(recent click count)`
    on the candidate side, so that every dot-product consumer (evaluator,
    ScaNN and brute-force exports) scores `q . c + w * log1p(recent count)`
    with no change of its own.
    """

    def __init__(self, query_tower: tf.keras.Model, candidate_tower: tf.keras.Model,
                 max_history: int, prior_weight: float = 0.0,
                 item_ids: list[str] | None = None,
                 item_recent_counts: list[float] | None = None,
                 query_specs: list[tf.TensorSpec] | None = None):
        super().__init__()
        self.query_specs = query_specs or query_input_specs()
        # The signature's inputs depend on the model's query inputs.
        self.query_embedding = tf.function(self._query_embedding,
                                           input_signature=self.query_specs)
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self._max_history = max_history
        self._prior_weight = float(prior_weight)
        self.prior = None
        if self._prior_weight:
            self.prior = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(item_ids),
                    tf.math.log1p(tf.constant(item_recent_counts, tf.float32))),
                default_value=0.0)

    def _query_embedding(self, *inputs):
        named = {spec.name: value for spec, value in zip(self.query_specs, inputs, strict=True)}
        named[features.HISTORY] = features.recent_history(named[features.HISTORY],
                                                          self._max_history)
        embedding = self.query_tower(named, training=False)
        if self.prior is not None:
            weight = tf.fill([tf.shape(embedding)[0], 1], self._prior_weight)
            embedding = tf.concat([embedding, weight], axis=1)
        return {"embedding": embedding}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.ITEM_ID)])
    def candidate_embedding(self, item_id):
        embedding = self.candidate_tower(item_id, training=False)
        if self.prior is not None:
            embedding = tf.concat([embedding, self.prior.lookup(item_id)[:, None]], axis=1)
        return {"embedding": embedding}


def _spec_json(spec: tf.TensorSpec) -> dict:
    return {"name": spec.name, "dtype": spec.dtype.name, "rank": spec.shape.rank}


def query_specs_of(contract: dict) -> list[tf.TensorSpec]:
    """The query inputs a towers contract (``towers.json``) declares, in order."""
    return [tf.TensorSpec([None] * int(entry["rank"]), tf.as_dtype(entry["dtype"]),
                          name=entry["name"]) for entry in contract["query_inputs"]]


def save_towers(directory: str, query_tower, candidate_tower, config: ModelConfig,
                vocab_dir: str, trained_epochs: int | None = None) -> None:
    """Writes the towers SavedModel plus its contract, config and vocab into
    `directory`; `trained_epochs`: the epochs the model's weights come from
    (the best epoch under early stopping), what a final fit repeats."""
    vocab = vocab_lib.read_vocab(vocab_dir)
    specs = query_input_specs(config)
    module = TowersModule(query_tower, candidate_tower, config.history.max_history,
                          config.prior.weight, vocab.item_ids, vocab.item_recent_counts, specs)
    tf.saved_model.save(module, directory, signatures={
        "query_embedding": module.query_embedding,
        "candidate_embedding": module.candidate_embedding,
    })
    dim = int(module.candidate_embedding(tf.constant(vocab.item_ids[:1]))["embedding"].shape[1])
    contract = {"query_inputs": [_spec_json(spec) for spec in specs],
                "max_history": config.history.max_history,
                "embedding_dim": dim,
                "prior_weight": config.prior.weight,
                "trained_epochs": trained_epochs or config.training.epochs,
                "export": config.export.to_dict()}
    for name, values in ((CONTRACT_FILE, contract), (MODEL_CONFIG_FILE, config.to_dict())):
        with tf.io.gfile.GFile(os.path.join(directory, name), "w") as f:
            f.write(json.dumps(values, indent=2, sort_keys=True))
    target = os.path.join(directory, VOCAB_DIR)
    tf.io.gfile.makedirs(target)  # gs://, s3:// as well as local directories
    for name in (vocab_lib.ITEMS_FILE, vocab_lib.USERS_FILE, vocab_lib.STATS_FILE):
        tf.io.gfile.copy(os.path.join(vocab_dir, name), os.path.join(target, name),
                         overwrite=True)


def read_contract(directory: str) -> dict:
    """``towers.json`` of a towers model; raises naming the directory when absent."""
    path = os.path.join(directory, CONTRACT_FILE)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"towers model {directory!r}: no {CONTRACT_FILE}; expected the "
                         "Trainer's Format-Serving directory written by this project's trainer")
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


class Towers:
    """A loaded towers SavedModel with its contract, config and vocab."""

    def __init__(self, directory: str):
        if not tf.io.gfile.exists(os.path.join(directory, "saved_model.pb")):
            raise ValueError(f"towers model {directory!r}: no saved_model.pb; expected the "
                             "Trainer's Format-Serving directory")
        self.directory = directory
        self.contract = read_contract(directory)
        self.module = tf.saved_model.load(directory)
        self.vocab = vocab_lib.read_vocab(os.path.join(directory, VOCAB_DIR))

    @property
    def config(self) -> ModelConfig:
        """The model's whole configuration (``model_config.json``)."""
        return self.read_config(self.directory)

    @staticmethod
    def read_config(directory: str) -> ModelConfig:
        """``model_config.json`` of a towers directory, without loading the model."""
        with tf.io.gfile.GFile(os.path.join(directory, MODEL_CONFIG_FILE)) as f:
            return parse(ModelConfig, json.load(f))

    @property
    def export(self) -> ExportConfig:
        """The serving contract's settings (top K, history exclusion, ScaNN)."""
        return parse(ExportConfig, self.contract["export"])

    @property
    def max_history(self) -> int:
        return int(self.contract["max_history"])

    @property
    def query_specs(self) -> list[tf.TensorSpec]:
        """The query inputs, in `query_embedding`'s argument order."""
        return query_specs_of(self.contract)

    def query_embeddings(self, user_ids, histories, extra: dict | None = None) -> tf.Tensor:
        """`[B]` ids, `[B, L]` histories and the model's extra query inputs
        (`extra`, by name; see `query_specs`) -> float32 `[B, D]`."""
        return self.module.query_embedding(
            *query_arguments(self.query_specs, user_ids, histories, extra))["embedding"]

    def candidate_embeddings(self, item_ids: list[str] | None = None,
                             batch_size: int = 8192) -> tf.Tensor:
        """Embeddings of `item_ids` (default: every vocab item in vocab order):
        float32 `[N, D]`; ids outside the vocabulary take its OOV row."""
        ids = self.vocab.item_ids if item_ids is None else list(item_ids)
        parts = [self.module.candidate_embedding(tf.constant(ids[i:i + batch_size]))["embedding"]
                 for i in range(0, len(ids), batch_size)]
        return tf.concat(parts, axis=0)


def query_arguments(specs: list[tf.TensorSpec], user_ids, histories,
                    extra: dict | None = None) -> list[tf.Tensor]:
    """Positional tensors for a `query_embedding`-like function of `specs`.

    Raises:
      ValueError: an extra query input is missing or not one the model takes.
    """
    extra = dict(extra or {})
    wanted = [spec.name for spec in specs[2:]]
    unknown = sorted(set(extra) - set(wanted))
    missing = [name for name in wanted if name not in extra]
    if unknown or missing:
        raise ValueError(f"query inputs: missing {missing}, unexpected {unknown}; this model "
                         f"takes user_id, history and {wanted}")
    values = [tf.constant(user_ids, tf.string), tf.constant(histories, tf.string)]
    for spec in specs[2:]:
        value = extra[spec.name]
        values.append(tf.convert_to_tensor(value, tf.string) if spec.dtype == tf.string
                      else tf.cast(value, spec.dtype))
    return values
