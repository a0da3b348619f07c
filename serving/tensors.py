"""TensorProto <-> tensor conversion and request validation against a signature.

Validation looks at each ``TensorProto``'s dtype and shape *before* decoding it,
so an oversized or malformed request is rejected without allocating its payload.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2


class InvalidInputError(ValueError):
    """A request input does not match the signature; maps to INVALID_ARGUMENT."""


def input_specs(concrete_fn) -> dict[str, tf.TensorSpec]:
    """Returns the keyword input specs of a signature's concrete function.

    Args:
        concrete_fn: A ``ConcreteFunction`` from ``loaded.signatures``.

    Returns:
        Mapping input name -> ``tf.TensorSpec`` (dtype and possibly partial shape).
    """
    args, kwargs = concrete_fn.structured_input_signature
    if args:
        # Signatures exported with tf.saved_model.save are keyword-only; a
        # positional spec would mean an unusual export we cannot feed by name.
        raise ValueError(
            f"signature has {len(args)} positional inputs; expected keyword-only inputs"
        )
    return dict(kwargs)


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


def check_input(
    name: str,
    proto: tensor_pb2.TensorProto,
    spec: tf.TensorSpec,
    max_batch_size: int,
) -> None:
    """Checks one request tensor's dtype, rank, fixed dims and batch size.

    Args:
        name: Input name (for error messages).
        proto: The request ``TensorProto``.
        spec: The signature's ``tf.TensorSpec`` for this input.
        max_batch_size: Largest accepted size of dimension 0.

    Raises:
        InvalidInputError: Naming the input, the bad value and what was expected.
    """
    try:
        got_dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        got_dtype = None
    if got_dtype is None or got_dtype != spec.dtype:
        got = (
            got_dtype.name if got_dtype is not None else f"<invalid enum {proto.dtype}>"
        )
        raise InvalidInputError(
            f"input '{name}' has dtype {got}, expected {spec.dtype.name}"
        )
    dims = _proto_shape(name, proto)
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


def proto_to_tensor(
    name: str, proto: tensor_pb2.TensorProto, dtype: tf.DType
) -> tf.Tensor:
    """Decodes a request ``TensorProto`` into an eager tensor of ``dtype``.

    String tensors decode to numpy object arrays of ``bytes``; they are converted
    with an explicit ``tf.string`` dtype so empty arrays (e.g. history ``[1, 0]``)
    keep their type.

    Raises:
        InvalidInputError: If the payload does not decode to the declared shape.
    """
    try:
        array = tf.make_ndarray(proto)
        return tf.convert_to_tensor(array, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(
            f"input '{name}' could not be decoded as {dtype.name} "
            f"{format_shape([d.size for d in proto.tensor_shape.dim])}: {err}"
        ) from err


def request_to_tensors(
    inputs: Mapping[str, tensor_pb2.TensorProto],
    specs: Mapping[str, tf.TensorSpec],
    max_batch_size: int,
) -> dict[str, tf.Tensor]:
    """Validates all request inputs against a signature and decodes them.

    Args:
        inputs: ``PredictRequest.inputs`` (name -> TensorProto).
        specs: Signature input specs from :func:`input_specs`.
        max_batch_size: Largest accepted size of dimension 0.

    Returns:
        Mapping input name -> tensor, ready for ``concrete_fn(**tensors)``.

    Raises:
        InvalidInputError: On a missing, unexpected or mismatching input.
    """
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise InvalidInputError(
            f"missing input(s) {missing}; expected inputs {sorted(specs)}"
        )
    unexpected = sorted(set(inputs) - set(specs))
    if unexpected:
        raise InvalidInputError(
            f"unexpected input(s) {unexpected}; expected inputs {sorted(specs)}"
        )
    for name, spec in specs.items():
        check_input(name, inputs[name], spec, max_batch_size)
    return {
        name: proto_to_tensor(name, inputs[name], spec.dtype)
        for name, spec in specs.items()
    }


def tensor_to_proto(value) -> tensor_pb2.TensorProto:
    """Encodes a signature output (tensor or array) as a ``TensorProto``."""
    if isinstance(value, tf.Tensor):
        value = value.numpy()
    return tf.make_tensor_proto(value)


def warmup_tensors(specs: Mapping[str, tf.TensorSpec]) -> dict[str, tf.Tensor]:
    """Builds a tiny request matching ``specs``: unknown dims become 1.

    Strings are ``b""``, numbers zero, booleans False. Used to exercise a newly
    loaded model before it replaces the served one.

    Returns:
        Mapping input name -> tensor of shape spec with ``None`` -> 1.
    """
    tensors = {}
    for name, spec in specs.items():
        if spec.shape.rank is None:
            shape: list[int] = [1]
        else:
            shape = [1 if d is None else d for d in spec.shape.as_list()]
        if spec.dtype == tf.string:
            array = np.full(shape, b"", dtype=object)
        else:
            array = np.zeros(shape, dtype=spec.dtype.as_numpy_dtype)
        tensors[name] = tf.convert_to_tensor(array, dtype=spec.dtype)
    return tensors
