"""The model's configuration tree: defaults, round trip, and checked values."""

import pytest

from clicklog.config import ConfigError, parse
from models.config import ModelConfig
from models.losses import LOSSES
from models.towers.pooling import POOLINGS


def test_round_trip_through_plain_dict():
    config = parse(ModelConfig, {"towers": {"embedding_dim": 8, "similarity": "cosine",
                                            "query_features": {"device": "string"}},
                                 "training": {"epochs": 1}, "prior": {"grid": [0, 0.5]}})
    assert parse(ModelConfig, config.to_dict()) == config
    assert config.towers.query_features == (("device", "string"),)
    assert config.prior.grid == (0.0, 0.5)


def test_defaults_are_the_tuned_model():
    config = ModelConfig()
    assert config.ensemble.size == 3 and config.history.dropout == 0.5
    assert config.prior.in_training and config.history.max_history == 50
    assert config.training.learning_rate == 0.03
    assert config.training.recency_half_life_days == 60.0
    assert config.towers.query_hidden_layers == (128,)
    # One source of K and of the history exclusion: the export section.
    assert (config.export.top_k, config.export.exclude_history) == (100, 50)


def test_choices_come_from_the_registries():
    with pytest.raises(ConfigError) as error:
        parse(ModelConfig, {"loss": {"kind": "focal"}})
    assert str(error.value) == (f"model.loss.kind='focal': expected one of {list(LOSSES)}")
    with pytest.raises(ConfigError, match=rf"expected one of {list(POOLINGS)}".replace("[", r"\[")
                       .replace("]", r"\]")):
        parse(ModelConfig, {"history": {"pooling": "max"}})


@pytest.mark.parametrize("values,message", [
    ({"towers": {"embeding_dim": 8}}, "model.towers.embeding_dim=8: expected a known key of "
                                      "model.towers"),
    ({"towers": {"embedding_dim": 0}}, "model.towers.embedding_dim=0: expected an integer >= 1"),
    ({"towers": {"user_id": "maybe"}}, "model.towers.user_id='maybe': expected true or false"),
    ({"towers": {"similarity": "l2"}}, r"model.towers.similarity='l2': expected one of "
                                       r"\['dot', 'cosine'\]"),
    ({"towers": {"query_hidden_layers": [128, 0]}},
     r"model.towers.query_hidden_layers=\[128, 0\]: expected a list of integers >= 1"),
    ({"towers": {"query_features": {"history": "string"}}},
     "model.towers.query_features=.*declared user/context features only"),
    ({"loss": {"temperature": -1.0}}, "model.loss.temperature=-1.0: expected a number > 0"),
    ({"training": {"recency_half_life_days": -3}},
     "model.training.recency_half_life_days=-3: expected a number >= 0"),
    ({"training": {"learning_rate": -0.1}}, "model.training.learning_rate=-0.1"),
    ({"negatives": {"mixed_distribution": "zipf"}},
     "model.negatives.mixed_distribution='zipf'"),
    ({"negatives": {"hard": -1}}, "model.negatives.hard=-1: expected an integer >= 0"),
    ({"loss": {"pair_negatives": 0}}, "model.loss.pair_negatives=0: expected an integer >= 1"),
    ({"history": {"dropout": 1.0}}, r"model.history.dropout=1.0: expected a number in \[0, 1\)"),
    ({"teacher": {"discriminator": True}},
     "model.teacher.discriminator=True: expected false unless model.teacher.enabled"),
    ({"teacher": {"enabled": True, "loss_weight": 0, "similarity_weight": 0}},
     "model.teacher.loss_weight=0.0: expected a weight > 0"),
    ({"teacher": {"enabled": True, "pretrain_epochs": 3}},
     "model.teacher.pretrain_epochs=3: expected fewer than model.training.epochs=3"),
    ({"export": {"scann": {"dimensions_per_block": -1}}},
     "model.export.scann.dimensions_per_block=-1: expected an integer >= 0"),
    ({"export": {"scann": {"target_recall": 1.5}}}, "model.export.scann.target_recall=1.5"),
])
def test_bad_values_name_the_key_the_value_and_the_expectation(values, message):
    with pytest.raises(ConfigError, match=message):
        parse(ModelConfig, values)


def test_with_changes_replaces_fields_of_sections():
    config = ModelConfig().with_changes(training={"seed": 43}, towers={"user_id": True})
    assert config.training.seed == 43 and config.towers.user_id
    assert config.training.epochs == ModelConfig().training.epochs
