"""gRPC servicers implementing TF Serving's PredictionService and ModelService.

Implemented: ``Predict``, ``GetModelMetadata`` (``signature_def`` field) and
``GetModelStatus``. Every other RPC answers UNIMPLEMENTED. Status codes follow
``tensorflow_model_server``: unknown model/version -> NOT_FOUND, bad inputs ->
INVALID_ARGUMENT, unknown signature -> FAILED_PRECONDITION, a TF runtime error
-> its own code (InvalidArgumentError -> INVALID_ARGUMENT), anything else ->
INTERNAL. A failed request never affects the next one.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import logging

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import tensors
from serving.model_registry import ModelRegistry
from serving.saved_model_loader import DEFAULT_SIGNATURE, ServedModel

log = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"
# tensorflow.error.Code and grpc status codes share their numeric values.
_GRPC_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failure with the gRPC status code to answer."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code = code
        self.details = details


def _abort_on_error(context: grpc.ServicerContext, rpc: str, handler, request):
    """Runs ``handler(request)`` and turns exceptions into gRPC statuses.

    ``context.abort`` is called outside the ``try`` because it works by raising.
    """
    try:
        return handler(request)
    except ServingError as err:
        code, details = err.code, err.details
    except tensors.InvalidInputError as err:
        code, details = grpc.StatusCode.INVALID_ARGUMENT, str(err)
    except Exception as err:  # a bug or unexpected state: report, keep serving
        log.exception("%s failed with an internal error", rpc)
        code, details = (
            grpc.StatusCode.INTERNAL,
            f"internal error: {type(err).__name__}: {err}",
        )
    log.info("%s -> %s: %s", rpc, code.name, details)
    context.abort(code, details)


def _unimplemented(context: grpc.ServicerContext, rpc: str):
    context.abort(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{rpc} is not implemented by retrieval-serve; use Predict",
    )


def resolve_model(registry: ModelRegistry, model_spec) -> ServedModel:
    """Returns the served model matching ``model_spec`` (name and optional version).

    Raises:
        ServingError: NOT_FOUND for an unknown name or a version that is not loaded.
    """
    if model_spec.name != registry.name:
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f"model '{model_spec.name}' is not served; "
            f"expected model name '{registry.name}'",
        )
    if model_spec.version_label:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"model_spec.version_label '{model_spec.version_label}' is not supported; "
            "expected model_spec.version or no version",
        )
    model = registry.current()
    if model_spec.HasField("version") and model_spec.version.value != model.version:
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f"model '{registry.name}' version {model_spec.version.value} is not "
            f"loaded; expected the served version {model.version}",
        )
    return model


def _set_model_spec(target, name: str, version: int, signature_name: str = "") -> None:
    target.name = name
    target.version.value = version
    if signature_name:
        target.signature_name = signature_name


def _tf_error_to_serving(err: tf.errors.OpError) -> ServingError:
    code = _GRPC_CODE_BY_NUMBER.get(int(err.error_code), grpc.StatusCode.INTERNAL)
    return ServingError(code, err.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService`` over a :class:`ModelRegistry`.

    CamelCase methods are the gRPC entry points (names fixed by the proto); the
    snake_case ones hold the logic and raise instead of touching the context.

    Args:
        registry: Source of the served model.
        max_batch_size: Largest accepted dimension 0 of any input.
    """

    def __init__(self, registry: ModelRegistry, max_batch_size: int):
        self._registry = registry
        self._max_batch_size = max_batch_size

    def Predict(self, request, context):
        return _abort_on_error(context, "Predict", self.predict, request)

    def GetModelMetadata(self, request, context):
        return _abort_on_error(
            context, "GetModelMetadata", self.get_model_metadata, request
        )

    def Classify(self, request, context):
        _unimplemented(context, "Classify")

    def Regress(self, request, context):
        _unimplemented(context, "Regress")

    def MultiInference(self, request, context):
        _unimplemented(context, "MultiInference")

    def predict(
        self, request: predict_pb2.PredictRequest
    ) -> predict_pb2.PredictResponse:
        """Validates inputs, runs the signature and encodes its outputs.

        Args:
            request: Inputs map name -> TensorProto, e.g. ``user_id`` string [B],
                ``history`` string [B, L].

        Returns:
            Outputs map name -> TensorProto (e.g. ``item_ids`` string [B, K],
            ``scores`` float32 [B, K]) and the model_spec actually used.
        """
        model = resolve_model(self._registry, request.model_spec)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        function = model.signatures.get(signature_name)
        if function is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"signature '{signature_name}' not found in model "
                f"'{self._registry.name}' version {model.version}; "
                f"expected one of {sorted(model.signatures)}",
            )
        inputs = tensors.request_to_tensors(
            request.inputs, model.input_specs[signature_name], self._max_batch_size
        )
        output_names = list(request.output_filter)
        unknown = sorted(set(output_names) - set(function.structured_outputs))
        if unknown:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output_filter names unknown output(s) {unknown}; "
                f"expected a subset of {sorted(function.structured_outputs)}",
            )
        try:
            outputs = function(**inputs)
        except tf.errors.OpError as err:
            raise _tf_error_to_serving(err) from err
        except (TypeError, ValueError) as err:  # raised by the function's arg checks
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from err
        response = predict_pb2.PredictResponse()
        _set_model_spec(
            response.model_spec, self._registry.name, model.version, signature_name
        )
        for name in output_names or sorted(outputs):
            response.outputs[name].CopyFrom(tensors.tensor_to_proto(outputs[name]))
        return response

    def get_model_metadata(
        self, request
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """Returns the served ``SignatureDefMap`` packed under "signature_def"."""
        model = resolve_model(self._registry, request.model_spec)
        fields = list(request.metadata_field)
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
        _set_model_spec(response.model_spec, self._registry.name, model.version)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in model.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: version status only."""

    def __init__(self, registry: ModelRegistry):
        self._registry = registry

    def GetModelStatus(self, request, context):
        return _abort_on_error(
            context, "GetModelStatus", self.get_model_status, request
        )

    def HandleReloadConfigRequest(self, request, context):
        _unimplemented(context, "HandleReloadConfigRequest")

    def get_model_status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        """Lists every known version: AVAILABLE (served) or END (replaced/failed)."""
        spec = request.model_spec
        if spec.name != self._registry.name:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"model '{spec.name}' is not served; "
                f"expected model name '{self._registry.name}'",
            )
        statuses = self._registry.statuses()
        if spec.HasField("version"):
            statuses = [s for s in statuses if s.version == spec.version.value]
            if not statuses:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"model '{spec.name}' has no version {spec.version.value}; "
                    f"expected one of {[s.version for s in self._registry.statuses()]}",
                )
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(
                status.state
            )
            entry.status.error_code = status.error_code
            entry.status.error_message = status.error_message
        return response
