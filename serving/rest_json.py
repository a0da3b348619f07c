"""TF Serving's REST ``:predict`` JSON <-> numpy arrays.

Two request formats (https://www.tensorflow.org/tfx/serving/api_rest):

* row ("instances"): ``{"instances": [{"user_id": "u1", "history": ["a"]}, ...]}``,
  one object per batch row (a bare value per row if the signature has one
  input); answered with ``{"predictions": [{"item_ids": [...], ...}, ...]}``;
* columnar ("inputs"): ``{"inputs": {"user_id": ["u1"], "history": [["a"]]}}``
  (a bare value if the signature has one input); answered with
  ``{"outputs": {"item_ids": [[...]], ...}}``.

Strings are JSON strings, or ``{"b64": "..."}`` for arbitrary bytes; output
strings that are not valid UTF-8 come back as ``{"b64": ...}``. As in TF
Serving, ``NaN``, ``Infinity`` and ``-Infinity`` are accepted for float inputs.

Every malformed body raises :class:`InvalidInputError` (HTTP 400) naming the
input and what was expected, including values nested deeper than
``MAX_RANK`` lists, integer literals too long for any dtype, out-of-range
numbers and strings holding lone UTF-16 surrogates.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from serving.tensors import InvalidInputError

# Deepest list nesting (tensor rank) accepted for one input value; deeper
# values are refused before the recursive conversion below could exhaust the
# stack. (Python's JSON parser itself stops a little below 1000 levels.)
MAX_RANK = 32
# Longest integer literal accepted: float64's largest finite value has 309
# digits, so any longer literal is out of range for every dtype.
MAX_INT_DIGITS = 309


@dataclasses.dataclass(frozen=True)
class PredictBody:
    """A parsed ``:predict`` body.

    Attributes:
        signature_name: ``signature_name`` field, "" for the default.
        values: Input name -> the JSON value (nested lists), columnar.
        row_format: True for "instances", False for "inputs".
    """

    signature_name: str
    values: dict
    row_format: bool


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise InvalidInputError(
            f"request body has an integer of {digits} digits ({text[:20]}...); "
            f"expected at most {MAX_INT_DIGITS} digits (no dtype holds more)"
        )
    return int(text)


def parse_body(body: bytes) -> dict:
    """Decodes the request body as a JSON object.

    Raises:
        InvalidInputError: On anything but a JSON object, naming the problem.
    """
    try:
        parsed = json.loads(body, parse_int=_parse_int)
    except InvalidInputError:
        raise
    except RecursionError as err:
        raise InvalidInputError(
            "request body nests arrays/objects too deeply for the JSON parser; "
            f"expected at most {MAX_RANK} levels per input"
        ) from err
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidInputError(
            f"request body is not valid JSON: {err}; expected a JSON object"
        ) from err
    if not isinstance(parsed, dict):
        raise InvalidInputError(
            f"request body is a JSON {type(parsed).__name__}; expected a JSON object"
        )
    return parsed


def parse_predict(parsed: dict, input_names: list[str]) -> PredictBody:
    """Splits a ``:predict`` body into per-input columnar values.

    Args:
        parsed: The decoded JSON object.
        input_names: The signature's input names.

    Raises:
        InvalidInputError: On a malformed body, naming what was expected.
    """
    signature_name = parsed.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise InvalidInputError(
            f"'signature_name' is {signature_name!r}; expected a string"
        )
    formats = [key for key in ("instances", "inputs") if key in parsed]
    if len(formats) != 1:
        raise InvalidInputError(
            "request must have exactly one of 'instances' (row format) or 'inputs' "
            f"(columnar format); got keys {sorted(parsed)}"
        )
    if formats[0] == "inputs":
        inputs = parsed["inputs"]
        if not isinstance(inputs, dict):
            if len(input_names) != 1:
                raise InvalidInputError(
                    f"'inputs' is a bare value but the signature has inputs "
                    f"{sorted(input_names)}; expected an object keyed by input name"
                )
            inputs = {input_names[0]: inputs}
        return PredictBody(signature_name, dict(inputs), row_format=False)
    return PredictBody(
        signature_name, _rows_to_columns(parsed["instances"], input_names), True
    )


def _rows_to_columns(instances, input_names: list[str]) -> dict[str, list]:
    if not isinstance(instances, list) or not instances:
        raise InvalidInputError(
            f"'instances' is {_preview(instances)}; expected a non-empty list of rows"
        )
    columns: dict[str, list] = {}
    for index, row in enumerate(instances):
        if not isinstance(row, dict) or (len(input_names) == 1 and "b64" in row):
            if len(input_names) != 1:
                raise InvalidInputError(
                    f"instances[{index}] is {_preview(row)}; expected an object with "
                    f"inputs {sorted(input_names)}"
                )
            row = {input_names[0]: row}
        if index == 0:
            columns = {name: [] for name in row}
        elif set(row) != set(columns):
            raise InvalidInputError(
                f"instances[{index}] has inputs {sorted(row)} but instances[0] has "
                f"{sorted(columns)}; expected the same inputs in every instance"
            )
        for name, value in row.items():
            columns[name].append(value)
    return columns


def _preview(value, limit: int = 60) -> str:
    """A short JSON rendering of ``value`` for error messages."""
    if isinstance(value, list):
        # Only the head is rendered: the value may be huge or deeply nested.
        inner = [_preview(item, limit) for item in value[:3]]
        text = "[" + ", ".join(inner) + (", ...]" if len(value) > 3 else "]")
    elif isinstance(value, dict):
        items = list(value.items())[:3]
        inner = [f"{json.dumps(key)}: {_preview(item, limit)}" for key, item in items]
        text = "{" + ", ".join(inner) + (", ...}" if len(value) > 3 else "}")
    else:
        text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_and_leaves(name: str, value, depth: int = 0) -> tuple[list[int], list]:
    """Shape and flattened leaves of a nested list, rejecting ragged nesting."""
    if not isinstance(value, list):
        return [], [value]
    if depth >= MAX_RANK:
        raise InvalidInputError(
            f"input '{name}' nests lists more than {MAX_RANK} deep; expected a "
            f"tensor of rank at most {MAX_RANK}"
        )
    if not value:
        return [0], []
    parts = [_shape_and_leaves(name, item, depth + 1) for item in value]
    inner = parts[0][0]
    for position, (shape, _) in enumerate(parts):
        if shape != inner:
            raise InvalidInputError(
                f"input '{name}' is ragged: element {position} has shape {shape} "
                f"but element 0 has {inner}; expected a rectangular array "
                "(pad string rows with \"\")"
            )
    return [len(value), *inner], [leaf for _, leaves in parts for leaf in leaves]


def _decode_string(name: str, leaf) -> bytes:
    if isinstance(leaf, str):
        try:
            return leaf.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InvalidInputError(
                f"input '{name}' has string {_preview(leaf)} with a lone UTF-16 "
                f"surrogate at position {err.start}; expected valid Unicode text "
                '(send arbitrary bytes as {"b64": "..."})'
            ) from err
    if isinstance(leaf, dict) and set(leaf) == {"b64"} and isinstance(leaf["b64"], str):
        try:
            return base64.b64decode(leaf["b64"], validate=True)
        except (binascii.Error, ValueError) as err:  # ValueError: non-ASCII
            raise InvalidInputError(
                f"input '{name}' has invalid base64 {_preview(leaf['b64'])}: {err}; "
                "expected standard base64 (A-Z, a-z, 0-9, +, /, = padding)"
            ) from err
    raise InvalidInputError(
        f"input '{name}' has value {_preview(leaf)}; expected string (a JSON string "
        'or {"b64": "..."})'
    )


_NONE = object()


def _leaf_matches(leaf, dtype: tf.DType) -> bool:
    if dtype == tf.bool:
        return isinstance(leaf, bool)
    if isinstance(leaf, bool):
        return False
    if dtype.is_integer:
        return isinstance(leaf, int)
    return isinstance(leaf, (int, float))


def _check_range(name: str, leaves: list, dtype: tf.DType) -> None:
    """Rejects numbers the dtype cannot hold (numpy would wrap or overflow)."""
    if not leaves or dtype == tf.bool or dtype.is_complex:
        return
    low, high = dtype.min, dtype.max
    if dtype.is_integer:
        bad = next((leaf for leaf in leaves if not low <= leaf <= high), _NONE)
    else:
        # NaN and +-Infinity are valid float inputs; finite numbers must fit.
        bad = next(
            (leaf for leaf in leaves
             if (isinstance(leaf, int) or math.isfinite(leaf)) and not low <= leaf <= high),
            _NONE,
        )
    if bad is not _NONE:
        bounds = f"{low:g} <= value <= {high:g}" if dtype.is_floating else (
            f"{low} <= value <= {high}"
        )
        raise InvalidInputError(
            f"input '{name}' has value {_preview(bad)} out of range for {dtype.name}; "
            f"expected {bounds}"
        )


def to_array(name: str, value, dtype: tf.DType) -> np.ndarray:
    """Converts one input's JSON value to a numpy array of ``dtype``.

    Raises:
        InvalidInputError: Naming the input, the bad value and the expected type.
    """
    shape, leaves = _shape_and_leaves(name, value)
    if dtype == tf.string:
        array = np.empty(len(leaves), dtype=object)
        array[:] = [_decode_string(name, leaf) for leaf in leaves]
        return array.reshape(shape)
    bad = next((leaf for leaf in leaves if not _leaf_matches(leaf, dtype)), _NONE)
    if bad is not _NONE:
        raise InvalidInputError(
            f"input '{name}' has value {_preview(bad)}; expected {dtype.name}"
        )
    _check_range(name, leaves, dtype)
    return np.array(leaves, dtype=dtype.as_numpy_dtype).reshape(shape)


def _json_value(array: np.ndarray):
    if array.dtype == object or array.dtype.kind == "S":
        flat = [_encode_string(v) for v in array.ravel().tolist()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


def _encode_string(value) -> str | dict:
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode("ascii")}


def format_predict(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict:
    """Builds the ``:predict`` response object from the signature's outputs."""
    if not row_format:
        values = {name: _json_value(array) for name, array in outputs.items()}
        return {"outputs": values if len(values) != 1 else next(iter(values.values()))}
    batch_sizes = {array.shape[0] if array.ndim else None for array in outputs.values()}
    if len(batch_sizes) != 1 or None in batch_sizes:
        raise InvalidInputError(
            "outputs do not share one batch dimension "
            f"({ {n: list(a.shape) for n, a in outputs.items()} }); "
            "use the columnar 'inputs' format"
        )
    columns = {name: _json_value(array) for name, array in outputs.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    rows = batch_sizes.pop()
    return {
        "predictions": [
            {name: column[row] for name, column in columns.items()} for row in range(rows)
        ]
    }
