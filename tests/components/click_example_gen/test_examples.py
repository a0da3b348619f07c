"""to_example writes tf.Example wire bytes itself: they must parse to exactly the
message the protobuf API builds from the same click."""

import math
import random

import pytest
from tensorflow.core.example import example_pb2

from clicklog.formats import Click
from components.click_example_gen.click_features import ClickFeatures
from components.click_example_gen.examples import to_example


def _reference(click, history, with_event_type=False):
    """The same example built field by field with the protobuf API."""
    full = isinstance(history, ClickFeatures)
    example = example_pb2.Example()
    feature = example.features.feature

    def put(name, value):
        if isinstance(value, str):
            feature[name].bytes_list.value.append(value.encode())
        elif isinstance(value, int):
            feature[name].int64_list.value.append(int(value))
        elif isinstance(value, float):
            feature[name].float_list.value.append(value)
        else:
            feature[name].bytes_list.value.extend(v.encode() for v in value)

    put("user_id", click.user_id)
    put("item_id", click.item_id)
    feature["history"].bytes_list.value.extend(
        v.encode() for v in (history.history if full else history))
    put("timestamp", int(click.timestamp))
    put("weight", float(click.weight))
    if full:
        put("seconds_since_previous_click", history.seconds_since_previous_click)
        if history.item_age_seconds is not None:
            put("item_age_seconds", history.item_age_seconds)
        if history.history_at_cutoff is not None:
            feature["history_at_cutoff"].bytes_list.value.extend(
                v.encode() for v in history.history_at_cutoff)
    if with_event_type:
        put("event_type", click.event_type)
    for name, value in click.features:
        put(name, value)
    return example


def _text(rng):
    alphabet = "abcXYZ019 ,|_-\u00fc\u4e2d\U0001f600"
    return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 3, 40, 200])))


def _float(rng):
    return rng.choice([0.0, 1.0, 2.5, -3.25, 1e-50, 1e300, -1e300, 3.4028235e38,
                       rng.uniform(-1e6, 1e6)])


def _int(rng):
    return rng.choice([0, 1, -1, 127, 128, 300, 2**31, -(2**31), 2**63 - 1, -(2**63),
                       rng.randrange(-(2**40), 2**40)])


def _random_click(rng):
    features = []
    for name, kind in sorted({"country": "string", "genres": "string_list", "hour": "int",
                              "price": "float"}.items()):
        if rng.random() < 0.7:
            value = {"string": lambda: _text(rng),
                     "string_list": lambda: tuple(_text(rng) for _ in range(rng.randrange(4))),
                     "int": lambda: _int(rng), "float": lambda: _float(rng)}[kind]()
            features.append((name, value))
    click = Click(_text(rng) or "u", _text(rng) or "i", rng.randrange(0, 4_102_444_800),
                  abs(_float(rng)), rng.choice(["", "click", "vue\u00e9"]), tuple(features))
    history = tuple(_text(rng) or "h" for _ in range(rng.choice([0, 1, 5, 50, 200])))
    if rng.random() < 0.3:
        return click, history
    age = rng.choice([None, 0, 5, 10**9])
    frozen = rng.choice([None, (), history[:3]])
    return click, ClickFeatures(history, rng.choice([-1, 0, 60, 10**9]), age, frozen)


def test_bytes_parse_to_the_protobuf_built_message():
    rng = random.Random(7)
    for _ in range(400):
        click, history = _random_click(rng)
        with_event_type = rng.random() < 0.5
        parsed = example_pb2.Example.FromString(to_example(click, history, with_event_type))
        expected = _reference(click, history, with_event_type)
        assert parsed == expected, (click, history)


def test_empty_lists_keep_their_kind_and_float32_rounds_like_protobuf():
    click = Click("u", "i", 5, 1.1, features=(("g", ()), ("s", ""), ("n", 0), ("f", 1e300)))
    parsed = example_pb2.Example.FromString(to_example(click, ClickFeatures((), -1, 0)))
    kinds = {name: f.WhichOneof("kind") for name, f in parsed.features.feature.items()}
    assert kinds["history"] == "bytes_list" and kinds["g"] == "bytes_list"
    assert list(parsed.features.feature["history"].bytes_list.value) == []
    assert list(parsed.features.feature["s"].bytes_list.value) == [b""]
    assert list(parsed.features.feature["seconds_since_previous_click"].int64_list.value) == [-1]
    assert parsed.features.feature["weight"].float_list.value[0] == pytest.approx(1.1)
    assert parsed.features.feature["weight"].float_list.value[0] != 1.1  # float32
    assert math.isinf(parsed.features.feature["f"].float_list.value[0])


def test_int_outside_int64_is_rejected_naming_the_feature():
    click = Click("u", "i", 5, features=(("big", 2**63),))
    with pytest.raises(ValueError, match=r"feature 'big': 9223372036854775808 is outside int64"):
        to_example(click, ())
