"""TensorProto <-> numpy conversion and request validation against a signature.

Validation looks at each ``TensorProto``'s dtype and shape *before* decoding it,
so an oversized or malformed request is rejected without allocating its payload.
Conversion reads and writes the proto fields with numpy directly:
``tf.make_ndarray``/``tf.make_tensor_proto`` do the same job several times
slower, which showed up as a large share of the per-request server time.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import math
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

K_INPUT = "k"  # an optional "how many results" input, bounded by --max_k

# Repeated field holding the values of each dtype when tensor_content is empty.
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
}


class InvalidInputError(ValueError):
    """A request input does not match the signature; maps to INVALID_ARGUMENT."""


def format_shape(shape) -> str:
    """Formats a shape (TensorShape, list of ints/None) as ``[2, ?]``."""
    if isinstance(shape, tf.TensorShape):
        if shape.rank is None:
            return "<unknown rank>"
        dims = shape.as_list()
    else:
        dims = list(shape)
    return "[" + ", ".join("?" if d is None or d < 0 else str(d) for d in dims) + "]"


def _proto_shape(name: str, proto: tensor_pb2.TensorProto) -> list[int]:
    """Returns the concrete shape of a request tensor, rejecting unknown dims."""
    if proto.tensor_shape.unknown_rank:
        raise InvalidInputError(
            f"input '{name}' has unknown rank; expected a concrete shape"
        )
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise InvalidInputError(
            f"input '{name}' has shape {format_shape(dims)} with an unknown dimension; "
            "expected all dimensions >= 0"
        )
    return dims


def check_dtype_and_shape(
    name: str,
    got_dtype: str,
    dims: list[int],
    spec: tf.TensorSpec,
    max_batch_size: int,
    max_length: int | None = None,
) -> None:
    """Checks one input's dtype name, rank, fixed dims, batch size and length.

    Args:
        name: Input name (for error messages).
        got_dtype: The request's dtype name, e.g. ``"string"``.
        dims: The request's concrete shape.
        spec: The signature's ``tf.TensorSpec`` for this input.
        max_batch_size: Largest accepted size of dimension 0.
        max_length: Largest accepted size of any later dimension the signature
            leaves open (e.g. the history length L of ``history [B, L]``);
            None = unbounded.

    Raises:
        InvalidInputError: Naming the input, the bad value and what was expected.
    """
    if got_dtype != spec.dtype.name:
        raise InvalidInputError(
            f"input '{name}' has dtype {got_dtype}, expected {spec.dtype.name}"
        )
    expected = spec.shape
    if expected.rank is not None:
        if len(dims) != expected.rank:
            raise InvalidInputError(
                f"input '{name}' has rank {len(dims)} (shape {format_shape(dims)}), "
                f"expected rank {expected.rank} (shape {format_shape(expected)})"
            )
        for axis, (got_dim, want_dim) in enumerate(
            zip(dims, expected.as_list(), strict=True)
        ):
            if want_dim is not None and got_dim != want_dim:
                raise InvalidInputError(
                    f"input '{name}' has size {got_dim} in dimension {axis} "
                    f"(shape {format_shape(dims)}), expected {want_dim} "
                    f"(shape {format_shape(expected)})"
                )
    if dims and dims[0] > max_batch_size:
        raise InvalidInputError(
            f"input '{name}' has batch size {dims[0]}, expected at most "
            f"{max_batch_size} (--max_batch_size)"
        )
    if max_length is None:
        return
    open_axes = (
        range(1, len(dims))
        if expected.rank is None
        else [axis for axis, d in enumerate(expected.as_list()) if axis and d is None]
    )
    for axis in open_axes:
        if dims[axis] > max_length:
            raise InvalidInputError(
                f"input '{name}' has length {dims[axis]} in dimension {axis} "
                f"(shape {format_shape(dims)}), expected at most {max_length} "
                "(--max_history_length)"
            )


def check_batch_sizes(shapes: Mapping[str, list[int]]) -> None:
    """Rejects inputs whose batch dimensions (dimension 0) disagree.

    Scalars (rank 0, e.g. a ``k`` input) have no batch dimension and are skipped.

    Raises:
        InvalidInputError: Naming every input's batch size.
    """
    batch = {name: dims[0] for name, dims in shapes.items() if dims}
    if len(set(batch.values())) > 1:
        sizes = ", ".join(f"'{name}' {size}" for name, size in sorted(batch.items()))
        raise InvalidInputError(
            f"inputs have different batch sizes ({sizes}); expected the same size "
            "in dimension 0 of every input"
        )


def proto_dtype_name(proto: tensor_pb2.TensorProto) -> str:
    try:
        return tf.dtypes.as_dtype(proto.dtype).name
    except TypeError:
        return f"<invalid enum {proto.dtype}>"


def check_input(
    name: str,
    proto: tensor_pb2.TensorProto,
    spec: tf.TensorSpec,
    max_batch_size: int,
    max_length: int | None = None,
) -> list[int]:
    """Checks one request ``TensorProto`` against its spec; returns its shape.

    Raises:
        InvalidInputError: Naming the input, the bad value and what was expected.
    """
    dims = _proto_shape(name, proto)
    check_dtype_and_shape(
        name, proto_dtype_name(proto), dims, spec, max_batch_size, max_length
    )
    return dims


def check_names(present, specs: Mapping[str, tf.TensorSpec]) -> None:
    """Rejects missing or unexpected input names."""
    present = set(present)
    missing = sorted(set(specs) - present)
    if missing:
        raise InvalidInputError(
            f"missing input(s) {missing}; expected inputs {sorted(specs)}"
        )
    unexpected = sorted(present - set(specs))
    if unexpected:
        raise InvalidInputError(
            f"unexpected input(s) {unexpected}; expected inputs {sorted(specs)}"
        )


def proto_to_array(
    name: str, proto: tensor_pb2.TensorProto, dims: list[int]
) -> np.ndarray:
    """Decodes a validated request ``TensorProto`` of shape ``dims`` into numpy.

    Strings become an object array of ``bytes``. As in TensorFlow, a single
    value fills the whole shape.

    Raises:
        InvalidInputError: If the payload does not hold ``prod(dims)`` values.
    """
    count = math.prod(dims)
    if proto.dtype == types_pb2.DT_STRING:
        values = proto.string_val
        if len(values) == count:
            array = np.empty(count, dtype=object)
            array[:] = list(values)
            return array.reshape(dims)
        if len(values) == 1:
            return np.full(dims, values[0], dtype=object)
        raise InvalidInputError(
            f"input '{name}' holds {len(values)} strings but its shape "
            f"{format_shape(dims)} needs {count}"
        )
    numpy_dtype = tf.dtypes.as_dtype(proto.dtype).as_numpy_dtype
    if proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype=numpy_dtype)
    else:
        field = _VALUE_FIELDS.get(proto.dtype)
        if field is None:
            raise InvalidInputError(
                f"input '{name}' has dtype {proto_dtype_name(proto)} without "
                "tensor_content; expected tensor_content for this dtype"
            )
        array = np.asarray(getattr(proto, field), dtype=numpy_dtype)
    if array.size == count:
        return array.reshape(dims)
    if array.size == 1:
        return np.full(dims, array[0], dtype=numpy_dtype)
    raise InvalidInputError(
        f"input '{name}' holds {array.size} values but its shape "
        f"{format_shape(dims)} needs {count}"
    )


def request_to_arrays(
    inputs: Mapping[str, tensor_pb2.TensorProto],
    specs: Mapping[str, tf.TensorSpec],
    max_batch_size: int,
    max_length: int | None = None,
) -> dict[str, np.ndarray]:
    """Validates all request inputs against a signature and decodes them.

    Every shape is checked (limits, agreeing batch sizes) before any payload is
    decoded, so a small request declaring a huge shape allocates nothing.

    Args:
        inputs: ``PredictRequest.inputs`` (name -> TensorProto).
        specs: The signature's input specs (``SessionSignature.input_specs``).
        max_batch_size: Largest accepted size of dimension 0.
        max_length: Largest accepted size of later open dimensions.

    Returns:
        Mapping input name -> numpy array.

    Raises:
        InvalidInputError: On a missing, unexpected or mismatching input.
    """
    check_names(inputs, specs)
    shapes = {
        name: check_input(name, inputs[name], spec, max_batch_size, max_length)
        for name, spec in specs.items()
    }
    check_batch_sizes(shapes)
    return {name: proto_to_array(name, inputs[name], shapes[name]) for name in specs}


def check_k(arrays: Mapping[str, np.ndarray], max_k: int) -> None:
    """Bounds an integer ``k`` input (if the signature has one) to [1, max_k]."""
    k = arrays.get(K_INPUT)
    if k is None or k.size == 0 or k.dtype.kind not in "iu":
        return
    low, high = int(k.min()), int(k.max())
    if high > max_k or low < 1:
        bad = high if high > max_k else low
        raise InvalidInputError(
            f"input '{K_INPUT}' has value {bad}, expected 1 <= k <= {max_k} (--max_k)"
        )


def array_to_proto(value) -> tensor_pb2.TensorProto:
    """Encodes a signature output (tensor or array) as a ``TensorProto``."""
    array = value.numpy() if isinstance(value, tf.Tensor) else np.asarray(value)
    proto = tensor_pb2.TensorProto()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if array.dtype == object or array.dtype.kind in "SU":
        proto.dtype = types_pb2.DT_STRING
        values = array.ravel().tolist()
        if array.dtype.kind == "U":
            values = [v.encode("utf-8") for v in values]
        proto.string_val.extend(values)
    else:
        proto.dtype = tf.dtypes.as_dtype(array.dtype).as_datatype_enum
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    return proto


def warmup_arrays(specs: Mapping[str, tf.TensorSpec]) -> dict[str, np.ndarray]:
    """Builds a tiny request matching ``specs``: unknown dims become 1.

    Strings are ``b""``, numbers zero (an integer ``k`` input is 1), booleans
    False. Used to exercise a newly loaded model before it is served.

    Returns:
        Mapping input name -> array of shape spec with ``None`` -> 1.
    """
    arrays = {}
    for name, spec in specs.items():
        if spec.shape.rank is None:
            shape: list[int] = [1]
        else:
            shape = [1 if d is None else d for d in spec.shape.as_list()]
        if spec.dtype == tf.string:
            arrays[name] = np.full(shape, b"", dtype=object)
        elif name == K_INPUT and spec.dtype.is_integer:
            arrays[name] = np.ones(shape, dtype=spec.dtype.as_numpy_dtype)
        else:
            arrays[name] = np.zeros(shape, dtype=spec.dtype.as_numpy_dtype)
    return arrays
