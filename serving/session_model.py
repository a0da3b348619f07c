"""A SavedModel loaded as ``tensorflow_model_server`` loads it: graph mode.

A ``tf.compat.v1.Session`` imports the MetaGraph tagged ``serve`` (restoring
the variables and running the init op, which builds an embedded ScaNN
searcher), and each request is one C++ ``Session::RunCallable`` on the
signature's input and output tensor names. No Python function is traced or
called per request: numpy arrays go in, numpy arrays come out, and the call
releases the GIL while the graph runs. One callable is made per signature and
set of requested outputs (and deadline bucket, below), on first use, and reused.

A call may carry a timeout: the run is then made with ``RunOptions.timeout_in_ms``
and TensorFlow cancels it once the time is up (``DeadlineExceededError``), so
work for a client that gave up stops. A callable's run options are fixed when
it is made, so timeouts are rounded up to a grid of four steps per doubling
(at most 19% late) and each grid value gets its own callable.

``benchmarks/serving_latency`` times this path against the eager
``loaded.signatures[...]`` call (``call_paths`` in its results).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import math
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2

# Timeouts are rounded up to 2 ** (n / STEPS_PER_DOUBLING) ms.
STEPS_PER_DOUBLING = 4


def timeout_bucket_ms(timeout_ms: float) -> int:
    """The grid value a timeout is rounded up to (at least 1 ms)."""
    if timeout_ms <= 1:
        return 1
    step = math.ceil(math.log2(timeout_ms) * STEPS_PER_DOUBLING)
    return math.ceil(2 ** (step / STEPS_PER_DOUBLING))


def _spec(name: str, info: meta_graph_pb2.TensorInfo) -> tf.TensorSpec:
    shape = tf.TensorShape(info.tensor_shape)
    return tf.TensorSpec(shape, tf.dtypes.as_dtype(info.dtype), name=name)


class SessionSignature:
    """One signature of a :class:`SessionModel`, called with numpy arrays.

    Attributes:
        name: Signature name.
        input_specs: Input name -> ``tf.TensorSpec`` (dtype, partial shape).
        output_names: The signature's output names, sorted.
    """

    def __init__(self, session: tf.compat.v1.Session, name: str,
                 signature_def: meta_graph_pb2.SignatureDef):
        self.name = name
        self._session = session
        self._feeds = {key: info.name for key, info in signature_def.inputs.items()}
        self._fetches = {key: info.name for key, info in signature_def.outputs.items()}
        self.input_specs = {
            key: _spec(key, info) for key, info in sorted(signature_def.inputs.items())
        }
        self.output_names = sorted(self._fetches)
        self._callables: dict[tuple[tuple[str, ...], int], object] = {}
        self._lock = threading.Lock()

    def _callable(self, outputs: tuple[str, ...], timeout_ms: int):
        key = (outputs, timeout_ms)
        made = self._callables.get(key)
        if made is None:
            with self._lock:
                made = self._callables.get(key)
                if made is None:
                    options = config_pb2.CallableOptions(
                        feed=[self._feeds[name] for name in self.input_specs],
                        fetch=[self._fetches[name] for name in outputs],
                    )
                    options.run_options.timeout_in_ms = timeout_ms  # 0 = none
                    # Session.make_callable with feeds goes through Session.run's
                    # Python feed handling; this is the C++ RunCallable.
                    made = self._session._make_callable_from_options(options)
                    self._callables[key] = made
        return made

    def __call__(
        self,
        arrays: Mapping[str, np.ndarray],
        outputs: Sequence[str] = (),
        timeout_ms: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs the signature.

        Args:
            arrays: Input name -> array of the input's dtype (strings: object
                arrays of ``bytes``), every input present.
            outputs: Output names to compute; empty means all.
            timeout_ms: Cancel the run after about this long (rounded up by
                :func:`timeout_bucket_ms`); None = no limit.

        Returns:
            Output name -> numpy array, in the order of ``outputs`` (sorted
            when all).

        Raises:
            tf.errors.OpError: What running the graph raised;
                ``DeadlineExceededError`` when the timeout cancelled it.
        """
        names = tuple(outputs) or tuple(self.output_names)
        feeds = [arrays[name] for name in self.input_specs]
        bucket = 0 if timeout_ms is None else timeout_bucket_ms(timeout_ms)
        values = self._callable(names, bucket)(*feeds)
        return dict(zip(names, values, strict=True))


class SessionModel:
    """A SavedModel version in its own graph and session.

    Args:
        version_dir: The SavedModel directory.
        config: Session options (thread pools); None = TensorFlow's defaults.

    Attributes:
        signature_defs: Signature name -> ``SignatureDef`` of the ``serve``
            MetaGraph.
        signatures: Signature name -> :class:`SessionSignature`, without the
            internal ``__saved_model_init_op``.
    """

    def __init__(self, version_dir: str, config: config_pb2.ConfigProto | None = None):
        graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=graph, config=config)
        try:
            with graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(
                    self.session, [tf.saved_model.SERVING], version_dir
                )
        except Exception:
            self.session.close()
            raise
        graph.finalize()  # requests never add ops
        self.signature_defs = dict(meta_graph.signature_def)
        # "__saved_model_init_op" (TF2 exports) initializes the variables: it
        # is listed in the metadata but never callable by a client.
        self.signatures = {
            name: SessionSignature(self.session, name, signature_def)
            for name, signature_def in self.signature_defs.items()
            if not name.startswith("__")
        }
