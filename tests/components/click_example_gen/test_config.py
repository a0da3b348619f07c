"""The `ingestion` settings: every bad value fails naming the key, the value
and what is allowed."""

import pytest

from clicklog.config import ConfigError, parse
from components.click_example_gen.config import IngestionConfig


@pytest.mark.parametrize("values,message", [
    ({"eval_fraction": 1.5}, r"ingestion.eval_fraction=1.5: expected a number in \(0, 1\)"),
    ({"history": 3}, r"ingestion.history=3: expected a known key of ingestion"),
    ({"test_fraction": 0.95}, r"ingestion.test_fraction=0.95: expected a number in \[0, 1 - "
                              r"eval_fraction=0.9\)"),
    ({"split_by": "session"}, r"ingestion.split_by='session': expected one of \['time', 'user'\]"),
    ({"split_by": "user", "eval_start_timestamp": 5},
     "ingestion.eval_start_timestamp=5: expected null with split_by=user"),
    ({"eval_start_timestamp": 10, "test_start_timestamp": 5},
     "ingestion.test_start_timestamp=5: expected a cut-off after eval_start_timestamp"),
    ({"min_timestamp": 10, "max_timestamp": 10},
     "ingestion.min_timestamp=10: expected a time before max_timestamp=10"),
    ({"event_types": ["click"]}, r"ingestion.event_types=\(\('click', 1.0\),\): expected \[\] "
                                 "unless ingestion.schema.event_type"),
    ({"event_types": {"click": -1}}, "ingestion.event_types={'click': -1}: expected a list of "
                                     "event types, or a mapping"),
    ({"max_clicks_per_user": -1}, "ingestion.max_clicks_per_user=-1: expected an integer >= 0"),
    ({"history_length": "50"}, "ingestion.history_length='50': expected an integer >= 1"),
    ({"schema": {"user": "uid"}}, "ingestion.schema.user='uid': expected a known key"),
    ({"schema": {"item_features": {"history": "string"}}},
     "ingestion.schema.item_features=.*expected feature names other than"),
    ({"schema": {"item_features": {"genre": "text"}}},
     r"ingestion.schema.item_features={'genre': 'text'}: expected a mapping of name to values "
     r"from \['string', 'int', 'float', 'string_list'\]"),
    ({"schema": {"timestamp_unit": "hours"}}, "ingestion.schema.timestamp_unit='hours'"),
    ({"shuffle": "disk"}, r"ingestion.shuffle='disk': expected one of \['auto', 'files'"),
    ({"shuffle_shard_mb": 0}, "ingestion.shuffle_shard_mb=0: expected an integer >= 1"),
])
def test_config_rejects_bad_values(values, message):
    with pytest.raises(ConfigError, match=message):
        parse(IngestionConfig, values)


def test_config_round_trips_through_a_plain_dict():
    config = parse(IngestionConfig, {
        "schema": {"event_type": "t", "item_features": {"genres": "string_list"}},
        "event_types": ["click", "buy"], "test_fraction": 0.1})
    again = parse(IngestionConfig, config.to_dict())
    assert again == config
    assert again.event_weights == {"buy": 1.0, "click": 1.0}
    assert config.splits == ["train", "eval", "test"]
