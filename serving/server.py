"""``retrieval-serve``: a TF Serving-compatible gRPC server for one SavedModel.

Usage (flag names follow ``tensorflow_model_server``)::

    retrieval-serve --port=8500 --model_name=retrieval \\
        --model_base_path=/models/retrieval --file_system_poll_wait_seconds=1

Prints ``retrieval-serve: serving model '<name>' version <v> on <host>:<port>``
once ready, and stops gracefully on SIGTERM/SIGINT.
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

from serving.model_registry import ModelLoadError, ModelRegistry
from serving.servicers import ModelServicer, PredictionServicer

log = logging.getLogger("retrieval-serve")

PROG = "retrieval-serve"


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser; accepts ``--flag=value`` and ``--flag value``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Serve a SavedModel over TF Serving's gRPC API."
    )
    parser.add_argument(
        "--port", type=int, default=8500, help="gRPC port (0 = any free port)"
    )
    parser.add_argument(
        "--rest_api_port",
        type=int,
        default=0,
        help="REST port; 0 = off (REST is not implemented yet)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "--model_name", default="retrieval", help="name clients must request"
    )
    parser.add_argument(
        "--model_base_path", help="directory with <version>/saved_model.pb"
    )
    parser.add_argument("--model_config_file", help="not supported yet")
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between polls for new versions; 0 = no polling",
    )
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=1024,
        help="largest accepted dimension 0 of any input",
    )
    parser.add_argument(
        "--grpc_max_threads", type=int, default=16, help="worker threads handling RPCs"
    )
    parser.add_argument(
        "--max_message_bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="max gRPC request/response size in bytes",
    )
    parser.add_argument(
        "--shutdown_grace_seconds",
        type=float,
        default=5.0,
        help="time in-flight RPCs get to finish on SIGTERM/SIGINT",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses and validates flags; exits with status 2 and a message on error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model_config_file:
        parser.error(
            f"--model_config_file={args.model_config_file} is not supported yet; "
            "expected --model_name and --model_base_path"
        )
    if not args.model_base_path:
        parser.error(
            "--model_base_path is required (directory with <version>/saved_model.pb)"
        )
    checks = [
        ("--port", args.port, 0 <= args.port <= 65535, "in [0, 65535]"),
        (
            "--rest_api_port",
            args.rest_api_port,
            0 <= args.rest_api_port <= 65535,
            "in [0, 65535]",
        ),
        (
            "--file_system_poll_wait_seconds",
            args.file_system_poll_wait_seconds,
            args.file_system_poll_wait_seconds >= 0,
            ">= 0",
        ),
        ("--max_batch_size", args.max_batch_size, args.max_batch_size >= 1, ">= 1"),
        (
            "--grpc_max_threads",
            args.grpc_max_threads,
            args.grpc_max_threads >= 1,
            ">= 1",
        ),
        (
            "--max_message_bytes",
            args.max_message_bytes,
            args.max_message_bytes >= 1,
            ">= 1",
        ),
        (
            "--shutdown_grace_seconds",
            args.shutdown_grace_seconds,
            args.shutdown_grace_seconds >= 0,
            ">= 0",
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
    """A started server. ``stop()`` shuts gRPC and the version poller down."""

    server: grpc.Server
    registry: ModelRegistry
    address: str
    port: int
    grace: float

    def stop(self) -> None:
        self.server.stop(self.grace).wait()
        self.registry.stop()


def start(args: argparse.Namespace) -> RunningServer:
    """Loads the model, starts polling and the gRPC server.

    Raises:
        ModelLoadError: If no version loads.
        OSError: If the address cannot be bound.
    """
    registry = ModelRegistry(
        args.model_name, args.model_base_path, args.file_system_poll_wait_seconds
    )
    registry.load_initial()
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
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(registry, args.max_batch_size), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(registry), server
    )
    address = _address(args.host, args.port)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:  # grpc raises RuntimeError when binding fails
        raise OSError(f"cannot bind gRPC server to {address}: {err}") from err
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    server.start()
    registry.start_polling()
    return RunningServer(
        server, registry, _address(args.host, port), port, args.shutdown_grace_seconds
    )


def _install_signal_handlers(stop_event: threading.Event) -> None:
    def handle(signum, _frame):
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop_event.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``retrieval-serve``; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.rest_api_port:
        log.warning(
            "--rest_api_port=%d ignored: the REST API is not implemented yet",
            args.rest_api_port,
        )
    try:
        running = start(args)
    except ModelLoadError as err:
        print(
            f"{PROG}: error: cannot serve model '{args.model_name}': {err}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    except OSError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        return 1
    stop_event = threading.Event()
    if threading.current_thread() is threading.main_thread():
        _install_signal_handlers(stop_event)
    print(
        f"{PROG}: serving model '{args.model_name}' version "
        f"{running.registry.current().version} on {running.address}",
        flush=True,
    )
    # Poll the event rather than block forever so signal handlers run promptly.
    while not stop_event.wait(0.5):
        pass
    running.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
