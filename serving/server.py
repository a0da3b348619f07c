"""``retrieval-serve``: a TF Serving-compatible gRPC + REST server for SavedModels.

Usage (flag names follow ``tensorflow_model_server``)::

    retrieval-serve --port=8500 --rest_api_port=8501 --model_name=retrieval \\
        --model_base_path=/models/retrieval --file_system_poll_wait_seconds=1
    retrieval-serve --port=8500 --model_config_file=/models/models.config \\
        --model_config_file_poll_wait_seconds=60

Prints one ``retrieval-serve: serving model '<name>' version <v> on <host>:<port>``
line per model once every model is loaded and both APIs are listening (plus
``retrieval-serve: REST API on http://<host>:<port>`` when enabled), and stops
on SIGTERM/SIGINT: every version reports UNLOADING and new connections are
refused at once, in-flight requests get ``--drain_seconds``, then the process
exits 0. With ``--model_config_file_poll_wait_seconds``
each applied config change prints ``retrieval-serve: reloaded model config
file ...`` and a rejected one ``retrieval-serve: error: ...; keeping the
previous config``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from concurrent import futures

import grpc
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from serving import saved_model_loader
from serving.batching import Batcher, BatchingConfigError, BatchingParameters
from serving.model_config import ConfigError, read_config_file, single_model
from serving.model_manager import ModelManager
from serving.model_registry import ModelLoadError
from serving.rest_api import RestServer
from serving.servicers import ModelServicer, PredictionServicer
from serving.serving_core import (
    DEFAULT_MAX_HISTORY_LENGTH,
    HISTORY_LENGTH_FACTOR,
    RequestLimits,
    ServingCore,
)

log = logging.getLogger("retrieval-serve")

PROG = "retrieval-serve"
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser; accepts ``--flag=value`` and ``--flag value``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Serve SavedModels over TF Serving's gRPC and REST APIs."
    )
    parser.add_argument(
        "--port", type=int, default=8500, help="gRPC port (0 = any free port)"
    )
    parser.add_argument(
        "--rest_api_port", type=int, default=0, help="REST port; 0 = REST off"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address both APIs bind (0.0.0.0 = all)"
    )
    parser.add_argument(
        "--model_name", default="retrieval", help="name clients must request"
    )
    parser.add_argument(
        "--model_base_path", help="directory with <version>/saved_model.pb"
    )
    parser.add_argument(
        "--model_config_file",
        help="ModelServerConfig text proto listing several models (instead of "
        "--model_name/--model_base_path)",
    )
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between polls for new versions; 0 = no polling",
    )
    parser.add_argument(
        "--model_version_settle_seconds",
        type=float,
        default=2.0,
        help="a version without the retrieval_serve.ready marker loads once none "
        "of its files changed for this long; 0 = as soon as saved_model.pb exists",
    )
    parser.add_argument(
        "--load_retry_initial_seconds",
        type=float,
        default=5.0,
        help="wait before retrying a version that failed to load (doubles per failure)",
    )
    parser.add_argument(
        "--load_retry_max_seconds",
        type=float,
        default=300.0,
        help="longest wait between retries of a version that fails to load",
    )
    parser.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0.0,
        help="seconds between re-reads of --model_config_file (models added, "
        "removed or changed are applied); 0 = read it once at start-up",
    )
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=1024,
        help="largest accepted dimension 0 of any input",
    )
    parser.add_argument(
        "--max_k",
        type=int,
        default=1000,
        help="largest accepted value of an integer 'k' input (if a signature has one)",
    )
    parser.add_argument(
        "--max_history_length",
        type=int,
        default=0,
        help="largest accepted history length (dimension 1 of 'history'); 0 = "
        f"{HISTORY_LENGTH_FACTOR} x the max_history each model version's export "
        f"declares ({DEFAULT_MAX_HISTORY_LENGTH} if it declares none)",
    )
    parser.add_argument(
        "--max_request_bytes",
        type=int,
        default=None,
        help="largest accepted request (serialized PredictRequest or REST body), "
        "answered INVALID_ARGUMENT (REST 400) beyond it; at most "
        "--max_message_bytes; default min(16 MiB, --max_message_bytes)",
    )
    parser.add_argument(
        "--grpc_max_threads", type=int, default=16, help="worker threads handling RPCs"
    )
    parser.add_argument(
        "--rest_api_num_threads",
        type=int,
        default=16,
        help="worker threads (concurrent connections) of the REST API",
    )
    parser.add_argument(
        "--rest_api_read_timeout_seconds",
        type=float,
        default=30.0,
        help="a REST request body must arrive within this long, else 408",
    )
    parser.add_argument(
        "--rest_api_idle_timeout_seconds",
        type=float,
        default=30.0,
        help="a REST connection must send its next request's headers within this "
        "long of opening or of its last answer, else it is closed",
    )
    parser.add_argument(
        "--rest_api_max_connections",
        type=int,
        default=512,
        help="open REST connections beyond this are answered 503 and closed",
    )
    parser.add_argument(
        "--max_message_bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="max gRPC request/response and REST body size in bytes",
    )
    parser.add_argument(
        "--tensorflow_intra_op_parallelism",
        type=int,
        default=0,
        help="threads one TF op may use; 0 = TensorFlow's default",
    )
    parser.add_argument(
        "--tensorflow_inter_op_parallelism",
        type=int,
        default=0,
        help="TF ops run in parallel; 0 = TensorFlow's default",
    )
    parser.add_argument(
        "--enable_batching",
        type=_flag_bool,
        nargs="?",
        const=True,
        default=False,
        help="merge concurrent Predict requests into batched model runs",
    )
    parser.add_argument(
        "--batching_parameters_file",
        help="BatchingParameters text proto (max_batch_size, batch_timeout_micros, "
        "num_batch_threads, max_enqueued_batches, allowed_batch_sizes, "
        "pad_variable_length_inputs); needs --enable_batching",
    )
    parser.add_argument(
        "--drain_seconds",
        type=float,
        default=10.0,
        help="on SIGTERM/SIGINT: status turns UNLOADING and new connections are "
        "refused at once; in-flight requests get this long to finish",
    )
    parser.add_argument(
        "--allow_reload_config_request",
        type=_flag_bool,
        nargs="?",
        const=True,
        default=False,
        help="accept ModelService.HandleReloadConfigRequest (off: PERMISSION_DENIED); "
        "its base paths must lie under the configured model base paths or "
        "--reload_config_allowed_roots",
    )
    parser.add_argument(
        "--reload_config_allowed_roots",
        default="",
        help="comma-separated directories a reload request may also point models at",
    )
    return parser


def _flag_bool(value: str) -> bool:
    """``--flag``, ``--flag=true`` or ``--flag=false``, as TF Serving's flags."""
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean; expected true or false")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses and validates flags; exits with status 2 and a message on error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model_config_file and args.model_base_path:
        parser.error(
            f"--model_config_file={args.model_config_file} and --model_base_path="
            f"{args.model_base_path} both given; expected one of them"
        )
    if not args.model_config_file and not args.model_base_path:
        parser.error(
            "--model_base_path (directory with <version>/saved_model.pb) or "
            "--model_config_file is required"
        )
    if args.model_config_file_poll_wait_seconds and not args.model_config_file:
        parser.error(
            "--model_config_file_poll_wait_seconds="
            f"{args.model_config_file_poll_wait_seconds} needs --model_config_file; "
            "expected it only together with a config file"
        )
    if args.batching_parameters_file and not args.enable_batching:
        parser.error(
            f"--batching_parameters_file={args.batching_parameters_file} needs "
            "--enable_batching; expected both or neither"
        )
    if args.max_request_bytes is None:
        args.max_request_bytes = min(DEFAULT_MAX_REQUEST_BYTES, args.max_message_bytes)
    port_ok = 0 <= args.port <= 65535
    checks = [
        ("--port", args.port, port_ok, "in [0, 65535]"),
        (
            "--rest_api_port",
            args.rest_api_port,
            0 <= args.rest_api_port <= 65535
            and (args.rest_api_port == 0 or args.rest_api_port != args.port),
            "in [0, 65535] and different from --port",
        ),
        (
            "--file_system_poll_wait_seconds",
            args.file_system_poll_wait_seconds,
            args.file_system_poll_wait_seconds >= 0,
            ">= 0",
        ),
        (
            "--model_config_file_poll_wait_seconds",
            args.model_config_file_poll_wait_seconds,
            args.model_config_file_poll_wait_seconds >= 0,
            ">= 0",
        ),
        *(
            (f"--{name}", getattr(args, name), getattr(args, name) >= 0, ">= 0")
            for name in (
                "model_version_settle_seconds",
                "load_retry_initial_seconds",
                "load_retry_max_seconds",
            )
        ),
        ("--max_batch_size", args.max_batch_size, args.max_batch_size >= 1, ">= 1"),
        ("--max_k", args.max_k, args.max_k >= 1, ">= 1"),
        ("--grpc_max_threads", args.grpc_max_threads, args.grpc_max_threads >= 1, ">= 1"),
        (
            "--rest_api_num_threads",
            args.rest_api_num_threads,
            args.rest_api_num_threads >= 1,
            ">= 1",
        ),
        *(
            (f"--{name}", getattr(args, name), getattr(args, name) > 0, "> 0")
            for name in ("rest_api_read_timeout_seconds", "rest_api_idle_timeout_seconds")
        ),
        (
            "--rest_api_max_connections",
            args.rest_api_max_connections,
            args.rest_api_max_connections >= 1,
            ">= 1",
        ),
        (
            "--max_message_bytes",
            args.max_message_bytes,
            args.max_message_bytes >= 1,
            ">= 1",
        ),
        (
            "--tensorflow_intra_op_parallelism",
            args.tensorflow_intra_op_parallelism,
            args.tensorflow_intra_op_parallelism >= 0,
            ">= 0",
        ),
        (
            "--tensorflow_inter_op_parallelism",
            args.tensorflow_inter_op_parallelism,
            args.tensorflow_inter_op_parallelism >= 0,
            ">= 0",
        ),
        (
            "--drain_seconds",
            args.drain_seconds,
            args.drain_seconds >= 0,
            ">= 0",
        ),
        (
            "--max_history_length",
            args.max_history_length,
            args.max_history_length >= 0,
            ">= 0 (0 = derived from the model)",
        ),
        (
            "--max_request_bytes",
            args.max_request_bytes,
            1 <= args.max_request_bytes <= args.max_message_bytes,
            f">= 1 and <= --max_message_bytes={args.max_message_bytes}",
        ),
    ]
    for flag, value, ok, expected in checks:
        if not ok:
            parser.error(f"{flag}={value} is invalid; expected {expected}")
    return args


def _address(host: str, port: int) -> str:
    # IPv6 literals need brackets in a gRPC target.
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


@dataclasses.dataclass
class RunningServer:
    """A started server. ``stop()`` shuts the APIs and the version pollers down."""

    server: grpc.Server
    core: ServingCore
    address: str
    port: int
    drain_seconds: float
    rest: RestServer | None = None
    _grpc_done: threading.Event | None = dataclasses.field(default=None, init=False)

    @property
    def manager(self) -> ModelManager:
        return self.core.manager

    @property
    def rest_address(self) -> str | None:
        if self.rest is None:
            return None
        host, port = self.rest.server_address[:2]
        return f"http://{_address(host, port)}"

    def begin_drain(self) -> None:
        """Reports every version UNLOADING and refuses new connections and RPCs;
        requests already in flight go on. Safe to call from a signal handler."""
        self.core.begin_drain()
        self._grpc_done = self.server.stop(self.drain_seconds)
        if self.rest is not None:
            self.rest.stop_accepting()

    def stop(self) -> None:
        """Drains (if :meth:`begin_drain` has not yet) and waits: in-flight
        requests of both APIs get ``drain_seconds`` together, then the version
        pollers stop."""
        if not self.core.draining:
            self.begin_drain()
        if self.rest is not None:
            self.rest.stop(self.drain_seconds)
        self._grpc_done.wait()
        if self.core.batcher is not None:
            self.core.batcher.stop()
        self.manager.stop()


def _grpc_server(
    args: argparse.Namespace, core: ServingCore, reload_roots: list[str] | None
) -> grpc.Server:
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=args.grpc_max_threads, thread_name_prefix="grpc-worker"
        ),
        options=[
            ("grpc.max_receive_message_length", args.max_message_bytes),
            ("grpc.max_send_message_length", args.max_message_bytes),
            # Without this a second server could silently share a busy port.
            ("grpc.so_reuseport", 0),
        ],
        # Beyond this many queued/running RPCs answer RESOURCE_EXHAUSTED at once
        # instead of queueing without bound.
        maximum_concurrent_rpcs=args.grpc_max_threads * 8,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(core, reload_roots), server
    )
    return server


def _configure_tensorflow_threads(args: argparse.Namespace) -> None:
    """Applies the TF thread-pool flags; must run before TensorFlow executes anything."""
    import tensorflow as tf

    saved_model_loader.configure_sessions(
        args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism
    )
    if args.tensorflow_intra_op_parallelism:
        tf.config.threading.set_intra_op_parallelism_threads(
            args.tensorflow_intra_op_parallelism
        )
    if args.tensorflow_inter_op_parallelism:
        tf.config.threading.set_inter_op_parallelism_threads(
            args.tensorflow_inter_op_parallelism
        )


def start(args: argparse.Namespace) -> RunningServer:
    """Loads the models, starts polling, the gRPC server and the REST API.

    Raises:
        ConfigError: If the model config file is invalid.
        ModelLoadError: If a model has no loadable version.
        OSError: If an address cannot be bound.
    """
    _configure_tensorflow_threads(args)
    configs = (
        read_config_file(args.model_config_file)
        if args.model_config_file
        else single_model(args.model_name, args.model_base_path)
    )
    manager = ModelManager(
        configs,
        args.file_system_poll_wait_seconds,
        settle_seconds=args.model_version_settle_seconds,
        retry_initial_seconds=args.load_retry_initial_seconds,
        retry_max_seconds=args.load_retry_max_seconds,
    )
    manager.load_initial()
    limits = RequestLimits(
        args.max_batch_size, args.max_k, args.max_history_length, args.max_request_bytes
    )
    batcher = None
    if args.enable_batching:
        parameters = (
            BatchingParameters.from_file(args.batching_parameters_file)
            if args.batching_parameters_file
            else BatchingParameters()
        )
        batcher = Batcher(parameters)
        log.info("batching requests: %s", parameters)
    core = ServingCore(manager, limits, batcher)
    reload_roots = None
    if args.allow_reload_config_request:
        extra = [root for root in args.reload_config_allowed_roots.split(",") if root]
        reload_roots = [config.base_path for config in configs] + extra
    server = _grpc_server(args, core, reload_roots)
    address = _address(args.host, args.port)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:  # grpc raises RuntimeError when binding fails
        raise OSError(f"cannot bind gRPC server to {address}: {err}") from err
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    rest = None
    if args.rest_api_port:
        try:
            rest = RestServer(
                (args.host, args.rest_api_port),
                core,
                args.rest_api_num_threads,
                args.max_request_bytes,
                read_timeout_seconds=args.rest_api_read_timeout_seconds,
                idle_timeout_seconds=args.rest_api_idle_timeout_seconds,
                max_connections=args.rest_api_max_connections,
            )
        except OSError as err:
            server.stop(0)
            raise OSError(
                f"cannot bind REST API to {_address(args.host, args.rest_api_port)}: {err}"
            ) from err
        rest.start()
    server.start()
    manager.start_polling()
    if args.model_config_file:
        manager.start_config_polling(
            args.model_config_file,
            args.model_config_file_poll_wait_seconds,
            report=_report,
            report_error=_report_error,
        )
    return RunningServer(
        server, core, _address(args.host, port), port, args.drain_seconds, rest
    )


def _report(message: str) -> None:
    """A config reload outcome: logged, and one stdout line operators can watch."""
    log.info("%s", message)
    print(f"{PROG}: {message}", flush=True)


def _report_error(message: str) -> None:
    log.error("%s", message)
    print(f"{PROG}: error: {message}", flush=True)


def _install_signal_handlers(
    stop_event: threading.Event, running: RunningServer
) -> None:
    def handle(signum, _frame):
        if stop_event.is_set():
            return
        log.info(
            "received %s; shutting down: draining in-flight requests for up to %.1fs",
            signal.Signals(signum).name,
            running.drain_seconds,
        )
        running.begin_drain()
        stop_event.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``retrieval-serve``; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        running = start(args)
    except (ConfigError, ModelLoadError, BatchingConfigError) as err:
        print(f"{PROG}: error: cannot serve: {err}", file=sys.stderr, flush=True)
        return 1
    except OSError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        return 1
    stop_event = threading.Event()
    if threading.current_thread() is threading.main_thread():
        _install_signal_handlers(stop_event, running)
    for registry in running.manager.registries():
        versions = registry.served_versions()
        label = "version" if len(versions) == 1 else "versions"
        print(
            f"{PROG}: serving model '{registry.name}' {label} "
            f"{', '.join(map(str, versions))} on {running.address}",
            flush=True,
        )
    if running.rest is not None:
        print(f"{PROG}: REST API on {running.rest_address}", flush=True)
    # Poll the event rather than block forever so signal handlers run promptly.
    while not stop_event.wait(0.5):
        pass
    running.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
