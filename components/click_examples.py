"""One click (+ its features) -> a serialized tf.Example.

Feature names (models/features.py reads the first five): `user_id`,
`item_id` (bytes), `timestamp` (int64, unix s), `weight` (float), `history`
(bytes list, oldest first); then `seconds_since_previous_click` and
`item_age_seconds` (int64), `event_type` (bytes, when the schema has one) and
every declared user/item/context feature under its own name.
"""

from __future__ import annotations

from clicklog.formats import Click
from components.click_features import ClickFeatures

_example_pb2 = None


def _new_example():
    # Imported once per process, on first use: Beam workers pay no TF import
    # unless they write examples, and the hot loop does no import lookups.
    global _example_pb2
    if _example_pb2 is None:
        from tensorflow.core.example import example_pb2

        _example_pb2 = example_pb2
    return _example_pb2.Example()


def _set(feature_map, name: str, value) -> None:
    feature = feature_map[name]
    if isinstance(value, str):
        feature.bytes_list.value.append(value.encode())
    elif isinstance(value, int):  # bool is an int
        feature.int64_list.value.append(int(value))
    elif isinstance(value, float):
        feature.float_list.value.append(value)
    else:
        feature.bytes_list.value.extend(v.encode() for v in value)


def to_example(click: Click, history: tuple[str, ...] | ClickFeatures,
               with_event_type: bool = False) -> bytes:
    """Serializes one click example.

    Args:
      click: the click.
      history: its history (oldest first), or its full `ClickFeatures`.
      with_event_type: write the `event_type` feature.
    """
    full = isinstance(history, ClickFeatures)
    example = _new_example()
    feature_map = example.features.feature
    _set(feature_map, "user_id", click.user_id)
    _set(feature_map, "item_id", click.item_id)
    feature_map["history"].bytes_list.value.extend(
        v.encode() for v in (history.history if full else history))
    _set(feature_map, "timestamp", int(click.timestamp))
    _set(feature_map, "weight", float(click.weight))
    if full:
        _set(feature_map, "seconds_since_previous_click", history.seconds_since_previous_click)
        if history.item_age_seconds is not None:
            _set(feature_map, "item_age_seconds", history.item_age_seconds)
    if with_event_type:
        _set(feature_map, "event_type", click.event_type)
    for name, value in click.features:
        _set(feature_map, name, value)
    return example.SerializeToString()
