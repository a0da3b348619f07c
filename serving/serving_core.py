"""Transport-independent request handling shared by the gRPC and REST front ends.

Resolves ``model_spec`` (name, version or label) to a served version, validates
inputs against the signature, runs it and builds the status/metadata answers.
Failures raise :class:`ServingError` carrying the gRPC status code that
``tensorflow_model_server`` would answer (the REST layer maps it to HTTP).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving import tensors
from serving.batching import Batcher, BatchingError
from serving.model_manager import ModelManager, ModelNotFoundError
from serving.model_registry import ModelLoadError, ModelRegistry, VersionNotServedError
from serving.saved_model_loader import DEFAULT_SIGNATURE, ServedModel

SIGNATURE_DEF_FIELD = "signature_def"
# tensorflow.error.Code and grpc status codes share their numeric values.
GRPC_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failure with the gRPC status code to answer."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code = code
        self.details = details


# --max_history_length=0: this many times the model's own max_history (a client
# may send more history than the model reads; far more is a mistake or abuse).
HISTORY_LENGTH_FACTOR = 20
# --max_history_length=0 for a model whose export does not declare max_history.
DEFAULT_MAX_HISTORY_LENGTH = 1000


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """Bounds every request must respect.

    Attributes:
        max_batch_size: Largest accepted dimension 0 of any input.
        max_k: Largest accepted value of an integer ``k`` input, if any.
        max_history_length: Largest accepted size of an input's later open
            dimension (the history length); 0 = derived per model version,
            ``HISTORY_LENGTH_FACTOR`` x its max_history.
        max_request_bytes: Largest accepted serialized request; 0 = unbounded
            (the transport's own message limit still applies).
    """

    max_batch_size: int = 1024
    max_k: int = 1000
    max_history_length: int = 0
    max_request_bytes: int = 0

    def history_length(self, model: ServedModel) -> int:
        """The history-length limit for one served version."""
        if self.max_history_length:
            return self.max_history_length
        if model.max_history is None:
            return DEFAULT_MAX_HISTORY_LENGTH
        return HISTORY_LENGTH_FACTOR * model.max_history

    def check_request_bytes(self, size: int) -> None:
        """Raises INVALID_ARGUMENT if a request of ``size`` bytes is too big."""
        if self.max_request_bytes and size > self.max_request_bytes:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request has {size} bytes, expected at most {self.max_request_bytes} "
                "(--max_request_bytes)",
            )


def check_deadline(deadline: float | None, stage: str) -> None:
    """Raises DEADLINE_EXCEEDED once ``deadline`` (``time.monotonic()``) passed.

    Args:
        deadline: The client's deadline, None for none.
        stage: What was about to happen, for the message.
    """
    if deadline is not None and time.monotonic() >= deadline:
        raise ServingError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the client's deadline passed {time.monotonic() - deadline:.3f}s ago, "
            f"{stage}; no further work was done",
        )


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A parsed ``model_spec``: name plus at most one of version and label."""

    name: str
    version: int | None = None
    label: str = ""
    signature_name: str = ""

    @classmethod
    def from_proto(cls, proto) -> ModelSpec:
        return cls(
            proto.name,
            proto.version.value if proto.HasField("version") else None,
            proto.version_label,
            getattr(proto, "signature_name", ""),
        )


def tf_error_to_serving(err: tf.errors.OpError) -> ServingError:
    code = GRPC_CODE_BY_NUMBER.get(int(err.error_code), grpc.StatusCode.INTERNAL)
    return ServingError(code, err.message)


class ServingCore:
    """Answers Predict, GetModelMetadata and GetModelStatus for a ModelManager."""

    def __init__(self, manager: ModelManager, limits: RequestLimits,
                 batcher: Batcher | None = None):
        self.manager = manager
        self.limits = limits
        self.batcher = batcher
        self._draining = threading.Event()

    @property
    def draining(self) -> bool:
        """True once shutdown began: statuses report UNLOADING."""
        return self._draining.is_set()

    def begin_drain(self) -> None:
        """Marks the server as shutting down, so load balancers stop sending."""
        self._draining.set()

    # --------------------------------------------------------------- lookups

    def registry(self, name: str) -> ModelRegistry:
        try:
            return self.manager.get(name)
        except ModelNotFoundError as err:
            raise ServingError(grpc.StatusCode.NOT_FOUND, str(err)) from err

    def resolve(self, spec: ModelSpec) -> tuple[ModelRegistry, ServedModel]:
        """Returns the registry and served version ``spec`` names.

        No version and no label means the highest served version.

        Raises:
            ServingError: NOT_FOUND for an unknown model or an unserved version;
                INVALID_ARGUMENT for an unknown label or both version and label.
        """
        registry = self.registry(spec.name)
        return registry, self._served(registry, spec)

    @contextlib.contextmanager
    def using(self, spec: ModelSpec) -> Iterator[tuple[ModelRegistry, ServedModel]]:
        """Like :meth:`resolve`, and counts the request as using the model until
        the block ends, so a config reload removing it waits for the request."""
        try:
            with self.manager.use(spec.name) as registry:
                yield registry, self._served(registry, spec)
        except ModelNotFoundError as err:
            raise ServingError(grpc.StatusCode.NOT_FOUND, str(err)) from err

    @staticmethod
    def label_version(registry: ModelRegistry, spec: ModelSpec) -> int | None:
        """The version ``spec`` asks for: its version, its label's version or None.

        Raises:
            ServingError: INVALID_ARGUMENT for both version and label, or an
                unknown label (TF Serving: "Unrecognized servable version label").
        """
        if not spec.label:
            return spec.version
        if spec.version is not None:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model_spec has both version {spec.version} and version_label "
                f"'{spec.label}'; expected one of them",
            )
        labels = registry.version_labels
        if spec.label not in labels:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Unrecognized servable version label: '{spec.label}' for model "
                f"'{registry.name}'; expected one of {sorted(labels)}",
            )
        return labels[spec.label]

    def _served(self, registry: ModelRegistry, spec: ModelSpec) -> ServedModel:
        version = self.label_version(registry, spec)
        try:
            return registry.current() if version is None else registry.get(version)
        except (VersionNotServedError, ModelLoadError) as err:
            raise ServingError(grpc.StatusCode.NOT_FOUND, str(err)) from err

    @staticmethod
    def signature(model: ServedModel, registry_name: str, signature_name: str):
        """Returns ``(signature, input_specs)``: the ``SessionSignature`` to call.

        Raises:
            ServingError: FAILED_PRECONDITION for an unknown signature.
        """
        name = signature_name or DEFAULT_SIGNATURE
        function = model.signatures.get(name)
        if function is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"signature '{name}' not found in model '{registry_name}' version "
                f"{model.version}; expected one of {sorted(model.signatures)}",
            )
        return function, function.input_specs

    # --------------------------------------------------------------- predict

    def run(
        self,
        function,
        arrays: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
        deadline: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs a signature on validated, decoded inputs.

        Args:
            function: The signature (``SessionSignature``).
            arrays: Input name -> numpy array, already checked by the caller
                with :func:`tensors.check_dtype_and_shape`.
            output_filter: Output names to return; empty means all.
            deadline: The client's deadline (``time.monotonic()``); the model
                is not run once it passed, a run still going at the deadline
                is cancelled (without batching), and an answer finished after
                it is replaced by DEADLINE_EXCEEDED.

        Returns:
            Output name -> numpy array, in sorted name order.
        """
        tensors.check_k(arrays, self.limits.max_k)
        outputs_available = function.output_names
        unknown = sorted(set(output_filter) - set(outputs_available))
        if unknown:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output_filter names unknown output(s) {unknown}; "
                f"expected a subset of {sorted(outputs_available)}",
            )
        check_deadline(deadline, "before running the model")
        try:
            if self.batcher is None:
                timeout_ms = (
                    None if deadline is None
                    else max(0.0, deadline - time.monotonic()) * 1000.0
                )
                outputs = function(arrays, list(output_filter), timeout_ms)
            else:
                outputs = self.batcher.run(
                    function, arrays, list(output_filter), function.output_names, deadline
                )
        except BatchingError as err:
            raise ServingError(err.code, err.details) from err
        except tf.errors.DeadlineExceededError as err:
            raise ServingError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "the client's deadline passed while the model ran; the run was "
                f"cancelled ({err.message.splitlines()[0]})",
            ) from err
        except tf.errors.OpError as err:
            raise tf_error_to_serving(err) from err
        check_deadline(deadline, "after running the model")
        return outputs

    # ------------------------------------------------------ status, metadata

    def model_status(
        self, spec: ModelSpec
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Every known version of ``spec.name`` with its state, or only the one
        ``spec.version`` or ``spec.version_label`` names.

        Raises:
            ServingError: NOT_FOUND for an unknown model or a version it never
                had; INVALID_ARGUMENT for an unknown label.
        """
        registry = self.registry(spec.name)
        version = self.label_version(registry, spec)
        statuses = registry.statuses()
        if not statuses:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{spec.name}' has no versions yet under {registry.base_path}; "
                "expected <base_path>/<version>/saved_model.pb",
            )
        if version is not None:
            known = [s.version for s in statuses]
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                named = f" (label '{spec.label}')" if spec.label else ""
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"model '{spec.name}' has no version {version}{named}; "
                    f"expected one of {known}",
                )
        response = get_model_status_pb2.GetModelStatusResponse()
        draining = self.draining
        for status in statuses:
            entry = response.model_version_status.add()
            entry.version = status.version
            state = status.state
            if draining and state == "AVAILABLE":
                state = "UNLOADING"  # shutting down: not ready for new traffic
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
            entry.status.error_code = status.error_code
            entry.status.error_message = status.error_message
        return response

    def model_metadata(
        self, spec: ModelSpec, fields: Sequence[str] = (SIGNATURE_DEF_FIELD,)
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """The served ``SignatureDefMap`` packed under "signature_def"."""
        registry, model = self.resolve(spec)
        if not fields:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest has no metadata_field; "
                f"expected ['{SIGNATURE_DEF_FIELD}']",
            )
        unsupported = [f for f in fields if f != SIGNATURE_DEF_FIELD]
        if unsupported:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unsupported metadata_field(s) {unsupported}; "
                f"expected ['{SIGNATURE_DEF_FIELD}']",
            )
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = registry.name
        response.model_spec.version.value = model.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in model.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response
