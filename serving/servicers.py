"""gRPC servicers implementing TF Serving's PredictionService and ModelService.

Implemented: ``Predict``, ``GetModelMetadata`` (``signature_def`` field),
``GetModelStatus`` and ``HandleReloadConfigRequest``. Every other RPC answers
UNIMPLEMENTED. Status codes follow ``tensorflow_model_server``: unknown
model/version -> NOT_FOUND, bad inputs -> INVALID_ARGUMENT, unknown signature
-> FAILED_PRECONDITION, a TF runtime error -> its own code
(InvalidArgumentError -> INVALID_ARGUMENT), anything else -> INTERNAL. A failed
request never affects the next one.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import logging
import time

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import tensors
from serving.model_config import ConfigError, configs_from_proto
from serving.serving_core import ModelSpec, ServingCore, ServingError, check_deadline

log = logging.getLogger(__name__)

__all__ = ["ModelServicer", "PredictionServicer", "ServingError"]

# time_remaining() beyond this means the client set no deadline.
NO_DEADLINE_SECONDS = 1e8


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


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService`` over a :class:`ServingCore`.

    CamelCase methods are the gRPC entry points (names fixed by the proto); the
    snake_case ones hold the logic and raise instead of touching the context.
    """

    def __init__(self, core: ServingCore):
        self._core = core

    def Predict(self, request, context):
        remaining = context.time_remaining()
        # No deadline: grpc reports a huge remaining time (or None).
        deadline = (
            time.monotonic() + remaining
            if remaining is not None and remaining < NO_DEADLINE_SECONDS
            else None
        )
        return _abort_on_error(
            context, "Predict", lambda r: self.predict(r, deadline), request
        )

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
        self, request: predict_pb2.PredictRequest, deadline: float | None = None
    ) -> predict_pb2.PredictResponse:
        """Validates inputs, runs the signature and encodes its outputs.

        The request's size and every input's shape are checked against the
        server's limits before any payload is decoded.

        Args:
            request: Inputs map name -> TensorProto, e.g. ``user_id`` string [B],
                ``history`` string [B, L].
            deadline: The client's deadline (``time.monotonic()``), None for none.

        Returns:
            Outputs map name -> TensorProto (e.g. ``item_ids`` string [B, K],
            ``scores`` float32 [B, K]) and the model_spec actually used.
        """
        core = self._core
        core.limits.check_request_bytes(request.ByteSize())
        check_deadline(deadline, "before the request was decoded")
        spec = ModelSpec.from_proto(request.model_spec)
        with core.using(spec) as (registry, model):
            function, specs = core.signature(model, registry.name, spec.signature_name)
            arrays = tensors.request_to_arrays(
                request.inputs, specs, core.limits.max_batch_size,
                core.limits.history_length(model),
            )
            outputs = core.run(function, arrays, request.output_filter, deadline)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = registry.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = spec.signature_name or "serving_default"
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(tensors.array_to_proto(array))
        return response

    def get_model_metadata(
        self, request
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """Returns the served ``SignatureDefMap`` packed under "signature_def"."""
        return self._core.model_metadata(
            ModelSpec.from_proto(request.model_spec), list(request.metadata_field)
        )


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: version status and config reload.

    Args:
        core: Shared request logic.
        reload_roots: Directories a ``HandleReloadConfigRequest`` may point
            models at (a model's base path must be one of them or lie under
            one, after resolving symlinks and ``..``); None refuses every
            reload request with PERMISSION_DENIED.
    """

    def __init__(self, core: ServingCore, reload_roots: list[str] | None = None):
        self._core = core
        self._reload_roots = (
            None
            if reload_roots is None
            else sorted({os.path.realpath(root) for root in reload_roots})
        )

    def GetModelStatus(self, request, context):
        return _abort_on_error(
            context, "GetModelStatus", self.get_model_status, request
        )

    def HandleReloadConfigRequest(self, request, context):
        return _abort_on_error(
            context, "HandleReloadConfigRequest", self.reload_config, request
        )

    def reload_config(self, request) -> model_management_pb2.ReloadConfigResponse:
        """Applies ``request.config`` (a ``ModelServerConfig``) as a reloaded
        ``--model_config_file`` would be; an invalid one changes nothing.

        Raises:
            ServingError: PERMISSION_DENIED when reloading is off or a base path
                lies outside the allowed roots; INVALID_ARGUMENT naming the bad
                field.
        """
        if self._reload_roots is None:
            raise ServingError(
                grpc.StatusCode.PERMISSION_DENIED,
                "HandleReloadConfigRequest is disabled; start retrieval-serve with "
                "--allow_reload_config_request to enable it",
            )
        try:
            configs = configs_from_proto(request.config, "ReloadConfigRequest.config")
        except ConfigError as err:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from err
        for config in configs:
            resolved = os.path.realpath(config.base_path)
            if not any(_is_under(resolved, root) for root in self._reload_roots):
                raise ServingError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"model '{config.name}' base_path {config.base_path!r} (resolved "
                    f"{resolved!r}) is outside the configured model base paths; "
                    f"expected a path under one of {self._reload_roots}",
                )
        result = self._core.manager.apply(configs)
        log.info("HandleReloadConfigRequest: %s; serving %s", result.describe(),
                 self._core.manager.names)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response

    def get_model_status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        """Lists every known version: AVAILABLE (served) or END (unloaded/failed);
        only the one ``model_spec.version`` or ``model_spec.version_label`` names."""
        return self._core.model_status(ModelSpec.from_proto(request.model_spec))
