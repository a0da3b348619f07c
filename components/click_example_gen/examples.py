"""One click (+ its features) -> a serialized tf.Example.

Feature names (models/features.py reads the first five): `user_id`,
`item_id` (bytes), `timestamp` (int64, unix s), `weight` (float), `history`
(bytes list, oldest first); then `seconds_since_previous_click` and
`item_age_seconds` (int64), `history_at_cutoff` (bytes list, eval and test
clicks only), `impressed_negatives` (bytes list, when impression event types
are configured), `event_type` (bytes, when the schema has one) and every
declared user/item/context feature under its own name.

The bytes are written directly in the protobuf wire format of
``tensorflow.Example`` (tensorflow/core/example/{example,feature}.proto)
instead of filling an ``example_pb2.Example`` and serializing it: building the
message field by field was the largest per-click cost of ClickExampleGen
(~40 us of Python/C++ round trips per click with a 40-item history, ~6x this
encoder), and it needs no TensorFlow import. Parsing the result gives the same
message as the protobuf API would build (tests/components/click_example_gen/test_examples.py
checks this against `example_pb2` on random clicks, including empty lists,
negative and 64-bit ints, unicode and float32 rounding/overflow); only the
order of the map entries in the bytes may differ, which no parser sees.

Wire format used (all length-delimited fields are tag, varint length, payload):
Example.features = 1, Features.feature = 1 (map entry: key = 1, value = 2),
Feature.bytes_list = 1, float_list = 2, int64_list = 3, and each list's
``value`` = 1 (bytes repeated; int64 packed varints; float packed little-endian
float32, the packed field left out when empty, as protobuf does).
"""

from __future__ import annotations

import functools
import math
import struct

from clicklog.formats import Click
from components.click_example_gen.click_features import ClickFeatures

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ONE_BYTE = [bytes((n,)) for n in range(128)]


def _varint(value: int) -> bytes:
    """Base-128 varint of a non-negative int (< 2**64)."""
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:  # lengths of history lists and feature maps
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if 0x800000 <= value < 0x800000000:  # 4-5 byte varints: unix timestamps
        return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80,
                      ((value >> 14) & 0x7F) | 0x80, ((value >> 21) & 0x7F) | (
                          0x80 if value >= 0x10000000 else 0))) + (
            bytes((value >> 28,)) if value >= 0x10000000 else b"")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int64_varint(value: int, name: str) -> bytes:
    """int64 as protobuf writes it: negatives as their 64-bit two's complement."""
    if 0 <= value < 128:
        return _ONE_BYTE[value]
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"tf.Example feature {name!r}: {value} is outside int64 "
                         f"[{_INT64_MIN}, {_INT64_MAX}]")
    return _varint(value + 2**64 if value < 0 else value)


def _float32(value: float) -> bytes:
    try:
        return struct.pack("<f", value)
    except OverflowError:  # protobuf casts to float32: out-of-range finite values become inf
        return struct.pack("<f", math.copysign(math.inf, value))


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _bytes_feature(values) -> bytes:
    """Feature{bytes_list{value: values}} for an iterable of bytes."""
    payload = b"".join([b"\x0a" + _varint(len(v)) + v for v in values])
    return _delimited(b"\x0a", payload)


def _one_bytes_feature(value: bytes) -> bytes:
    inner = b"\x0a" + _varint(len(value)) + value
    return b"\x0a" + _varint(len(inner)) + inner


def _int64_feature(values, name: str) -> bytes:
    if not values:
        return b"\x1a\x00"
    packed = b"".join([_int64_varint(int(v), name) for v in values])
    return _delimited(b"\x1a", _delimited(b"\x0a", packed))


def _float_feature(values) -> bytes:
    if not values:
        return b"\x12\x00"
    packed = b"".join([_float32(float(v)) for v in values])
    return _delimited(b"\x12", _delimited(b"\x0a", packed))


def _feature(name: str, value) -> bytes:
    """A feature value as `Click.features` holds it -> Feature bytes."""
    if isinstance(value, str):
        return _one_bytes_feature(value.encode())
    if isinstance(value, int):  # bool is an int
        return _int64_feature([value], name)
    if isinstance(value, float):
        return _float_feature([value])
    return _bytes_feature([v.encode() for v in value])


def _entry(name: str, feature: bytes) -> bytes:
    """One entry of the Features.feature map (field 1): key 1, value 2."""
    return _delimited(b"\x0a", _delimited(b"\x0a", name.encode()) + _delimited(b"\x12", feature))


def _fixed_key(name: str) -> bytes:
    return _delimited(b"\x0a", name.encode())


_USER_ID = _fixed_key("user_id")
_ITEM_ID = _fixed_key("item_id")
_HISTORY = _fixed_key("history")
_HISTORY_AT_CUTOFF = _fixed_key("history_at_cutoff")
_TIMESTAMP = _fixed_key("timestamp")
_WEIGHT = _fixed_key("weight")
_SINCE = _fixed_key("seconds_since_previous_click")
_ITEM_AGE = _fixed_key("item_age_seconds")
_EVENT_TYPE = _fixed_key("event_type")
_IMPRESSED_NEGATIVES = _fixed_key("impressed_negatives")


def _fixed_entry(key: bytes, feature: bytes) -> bytes:
    payload = key + b"\x12" + _varint(len(feature)) + feature
    return b"\x0a" + _varint(len(payload)) + payload


# Ids repeat across clicks (a user's id on each of their clicks, an item in
# up to `history_length` later histories), so their encodings are memoized;
# bounded, so memory does not grow with the vocabulary.
_CACHE_SIZE = 1 << 16


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _history_value(item_id: str) -> bytes:
    """One `value` of the history BytesList: tag, length, UTF-8 bytes."""
    data = item_id.encode()
    return b"\x0a" + _varint(len(data)) + data


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _id_entry(key: bytes, value: str) -> bytes:
    return _fixed_entry(key, _one_bytes_feature(value.encode()))


@functools.lru_cache(maxsize=256)
def _weight_entry(weight: float) -> bytes:
    return _fixed_entry(_WEIGHT, _float_feature([weight]))


def _int_entry(key: bytes, value: int, name: str) -> bytes:
    packed = _int64_varint(value, name)
    inner = b"\x0a" + _ONE_BYTE[len(packed)] + packed  # <= 10 bytes: one-byte lengths
    feature = b"\x1a" + _ONE_BYTE[len(inner)] + inner
    payload = key + b"\x12" + _ONE_BYTE[len(feature)] + feature
    return b"\x0a" + _varint(len(payload)) + payload


def to_example(click: Click, history: tuple[str, ...] | ClickFeatures,
               with_event_type: bool = False) -> bytes:
    """Serializes one click example.

    Args:
      click: the click.
      history: its history (oldest first), or its full `ClickFeatures`.
      with_event_type: write the `event_type` feature.
    """
    full = isinstance(history, ClickFeatures)
    items = history.history if full else history
    entries = [
        _id_entry(_USER_ID, click.user_id),
        _id_entry(_ITEM_ID, click.item_id),
        _fixed_entry(_HISTORY, _delimited(b"\x0a", b"".join(map(_history_value, items)))),
        _int_entry(_TIMESTAMP, int(click.timestamp), "timestamp"),
        _weight_entry(float(click.weight)),
    ]
    if full:
        entries.append(_int_entry(_SINCE, history.seconds_since_previous_click,
                                  "seconds_since_previous_click"))
        if history.item_age_seconds is not None:
            entries.append(_int_entry(_ITEM_AGE, history.item_age_seconds, "item_age_seconds"))
        if history.history_at_cutoff is not None:
            entries.append(_fixed_entry(_HISTORY_AT_CUTOFF, _delimited(
                b"\x0a", b"".join(map(_history_value, history.history_at_cutoff)))))
        if history.impressed_negatives is not None:
            entries.append(_fixed_entry(_IMPRESSED_NEGATIVES, _delimited(
                b"\x0a", b"".join(map(_history_value, history.impressed_negatives)))))
    if with_event_type:
        entries.append(_id_entry(_EVENT_TYPE, click.event_type))
    for name, value in click.features:
        entries.append(_entry(name, _feature(name, value)))
    return _delimited(b"\x0a", b"".join(entries))
