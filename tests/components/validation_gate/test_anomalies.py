"""Anomalies -> blocking or not, and the one line per anomaly that stops a run.

Statistics come from TFDV itself (`generate_statistics_from_dataframe`), the
comparisons from `tfdv.validate_statistics`: the thresholds and the messages
are checked on what TFDV really reports."""

import os

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from clicklog.config import parse
from clicklog.errors import InputError
from components.validation_gate import anomalies
from components.validation_gate.config import ValidationConfig
from pipeline.pipeline import DEFAULT_SCHEMA

RUN_TIME = 1_700_000_000


def _stats(items, timestamps=None):
    timestamps = timestamps or [RUN_TIME - 100] * len(items)
    return tfdv.generate_statistics_from_dataframe(pd.DataFrame(
        {"user_id": ["u"] * len(items), "item_id": items, "timestamp": timestamps}))


def _schema():
    return tfdv.load_schema_text(DEFAULT_SCHEMA)


def test_schema_anomalies_become_one_line_each_naming_feature_kind_and_key():
    proto = anomalies_pb2.Anomalies()
    info = proto.anomaly_info["weight"]
    info.description = "summary"
    info.reason.add(type=anomalies_pb2.AnomalyInfo.FLOAT_TYPE_BIG_FLOAT,
                    short_description="Out-of-range values",
                    description="Unexpectedly large value: 11.")
    found = anomalies.from_proto(proto, "train")
    assert found == [anomalies.Anomaly("weight", "FLOAT_TYPE_BIG_FLOAT", "train",
                                       "Unexpectedly large value: 11.")]
    config = ValidationConfig()
    error = anomalies.DataValidationError(anomalies.partition(found, config).blocking, config,
                                          "schema.pbtxt")
    assert isinstance(error, InputError)
    assert str(error).splitlines() == [
        "click examples failed validation against the schema 'schema.pbtxt' (1 blocking "
        "anomaly; training and pushing stopped; --allow-anomaly FEATURE:KIND overrides one):",
        "  weight: FLOAT_TYPE_BIG_FLOAT in split train: Unexpectedly large value: 11.; relax "
        "with validation.allow_anomalies=[weight:FLOAT_TYPE_BIG_FLOAT]"]


def test_allowed_and_warn_only_anomalies_do_not_block():
    found = [anomalies.Anomaly("item_id", "COMPARATOR_L_INFTY_HIGH", "eval", "far", "drift"),
             anomalies.Anomaly("country", "SCHEMA_NEW_COLUMN", "train", "new"),
             anomalies.Anomaly("weight", "FLOAT_TYPE_BIG_FLOAT", "train", "big")]
    config = parse(ValidationConfig, {"allow_anomalies": ["item_id:COMPARATOR_L_INFTY_HIGH"]})
    verdict = anomalies.partition(found, config)
    assert [a.feature for a in verdict.allowed] == ["item_id"]
    assert [a.feature for a in verdict.warned] == ["country"]
    assert [a.feature for a in verdict.blocking] == ["weight"]
    # Allowing one kind of a feature does not allow another feature's.
    other = parse(ValidationConfig, {"allow_anomalies": ["user_id:COMPARATOR_L_INFTY_HIGH"]})
    assert anomalies.partition(found[:1], other).blocking == (found[0],)


def test_drift_past_the_threshold_names_the_threshold_key():
    config = parse(ValidationConfig, {"drift": {"item_id": 0.3}})
    previous = _stats(["a", "b", "c", "d"] * 25)
    same = _stats(["a", "b", "c", "d"] * 20)
    drifted = _stats(["a"] * 90 + ["b"] * 10)
    assert anomalies.comparisons(tfdv.validate_statistics, _schema(), anomalies.DRIFT,
                                 config.drift, same, previous, "train") == []
    found = anomalies.comparisons(tfdv.validate_statistics, _schema(), anomalies.DRIFT,
                                  config.drift, drifted, previous, "train")
    assert [(a.feature, a.kind, a.check) for a in found] == [
        ("item_id", "COMPARATOR_L_INFTY_HIGH", "drift")]
    text = anomalies.line(found[0], config)
    assert text.startswith("item_id: COMPARATOR_L_INFTY_HIGH in split train: "), text
    assert "0.65" in text and "above the threshold 0.3" in text, text
    assert text.endswith("relax with validation.drift.item_id (now 0.3) or "
                         "validation.allow_anomalies=[item_id:COMPARATOR_L_INFTY_HIGH]"), text


def test_skew_between_train_and_eval_uses_the_skew_key():
    config = parse(ValidationConfig, {"skew": {"item_id": 0.2}})
    found = anomalies.comparisons(tfdv.validate_statistics, _schema(), anomalies.SKEW,
                                  config.skew, _stats(["a"] * 10 + ["b"] * 10),
                                  _stats(["b"] * 20), "train vs eval")
    assert [(a.feature, a.kind, a.split) for a in found] == [
        ("item_id", "COMPARATOR_L_INFTY_HIGH", "train vs eval")]
    assert "relax with validation.skew.item_id (now 0.2)" in anomalies.line(found[0], config)


def test_a_comparator_on_a_feature_the_schema_lacks_names_the_key():
    config = parse(ValidationConfig, {"drift": {"item": 0.3}})
    with pytest.raises(InputError, match=r"validation.drift='item': expected a feature of the "
                                         r"schema \(\['event_type', 'history', "):
        anomalies.comparisons(tfdv.validate_statistics, _schema(), anomalies.DRIFT,
                              config.drift, _stats(["a"]), _stats(["a"]), "train")


def test_clicks_after_the_run_started_are_an_anomaly_of_timestamp():
    config = ValidationConfig()
    stats = _stats(["a", "b"], [RUN_TIME - 10, RUN_TIME + 86400])
    assert anomalies.future_clicks(stats, "eval", RUN_TIME + 86400 - 3600, config) == []
    found = anomalies.future_clicks(stats, "eval", RUN_TIME, config)
    assert anomalies.line(found[0], config) == (
        "timestamp: CLICK_IN_FUTURE in split eval: newest click at 1700086400 "
        "(2023-11-15T22:13:20Z) is 86400 s after the run started (2023-11-14T22:13:20Z); "
        "expected clicks up to 3600 s after it; relax with validation.max_future_seconds "
        "(now 3600) or validation.allow_anomalies=[timestamp:CLICK_IN_FUTURE]")
    assert anomalies.future_clicks(stats, "eval", RUN_TIME,
                                   config.replace(max_future_seconds=None)) == []


def test_the_default_schema_ships_with_the_code():
    assert os.path.isfile(DEFAULT_SCHEMA)
    names = {f.name for f in _schema().feature}
    assert {"user_id", "item_id", "timestamp", "weight", "history"} <= names
