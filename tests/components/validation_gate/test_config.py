"""The `validation` section rejects what the gate could not apply, naming the key."""

import pytest

from clicklog.config import ConfigError, parse
from components.validation_gate.config import ValidationConfig


@pytest.mark.parametrize("values, message", [
    ({"allow_anomalies": ["item_id"]},
     "validation.allow_anomalies=['item_id']: expected a list of FEATURE:KIND"),
    ({"allow_anomalies": ["item_id:NOT_A_KIND"]},
     "validation.allow_anomalies=['item_id:NOT_A_KIND']: expected a list of FEATURE:KIND"),
    ({"drift": {"item_id": 0}}, "validation.drift={'item_id': 0}: expected a mapping of name "
                                "to numbers in (0, 1]"),
    ({"skew": {"item_id": 1.5}}, "validation.skew={'item_id': 1.5}: expected a mapping of name "
                                 "to numbers in (0, 1]"),
    ({"warn_only": ["SOMETHING"]}, "validation.warn_only=['SOMETHING']: expected a list of "
                                   "values from ["),
    ({"max_future_seconds": -1}, "validation.max_future_seconds=-1: expected an integer >= 0 "
                                 "or null"),
])
def test_bad_values_name_the_key_and_what_is_allowed(values, message):
    with pytest.raises(ConfigError) as error:
        parse(ValidationConfig, values)
    assert str(error.value).startswith(message), str(error.value)


def test_allowances_parse_to_feature_kind_pairs():
    config = parse(ValidationConfig, {"allow_anomalies": ["item_id:COMPARATOR_L_INFTY_HIGH",
                                                         "timestamp:CLICK_IN_FUTURE"]})
    assert config.allowed == {("item_id", "COMPARATOR_L_INFTY_HIGH"),
                              ("timestamp", "CLICK_IN_FUTURE")}
