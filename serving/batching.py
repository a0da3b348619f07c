"""Server-side request batching with ``tensorflow_model_server``'s flags.

``--enable_batching`` merges concurrent Predict requests for the same model
version, signature and requested outputs into one model run;
``--batching_parameters_file`` is a ``BatchingParameters`` text proto, as TF
Serving reads it::

    max_batch_size { value: 64 }          # rows per model run
    batch_timeout_micros { value: 1000 }  # longest wait for a batch to fill
    num_batch_threads { value: 2 }        # model runs in parallel
    max_enqueued_batches { value: 100 }   # full batches waiting; beyond: UNAVAILABLE
    pad_variable_length_inputs: true      # pad open non-batch dims to the longest
    allowed_batch_sizes: 8                # optional: pad each batch up to one of
    allowed_batch_sizes: 64               #   these (the last = max_batch_size)

Semantics follow TF Serving's shared batch scheduler: a batch runs as soon as
it is full or ``batch_timeout_micros`` after its first request arrived; a
request larger than ``max_batch_size`` is refused with INVALID_ARGUMENT (no
splitting); requests merge only when every input agrees beyond the batch
dimension, except that with ``pad_variable_length_inputs`` open dimensions
(the history length) are padded to the batch's longest, strings with ``""``
and numbers with 0. That padding is neutral for this project's exports (``""``
is the history padding) but not for every model, which is why it is an option.
Scalar inputs (``k``) must be equal to merge. A request whose deadline passes
while it waits is answered DEADLINE_EXCEEDED and left out of its batch.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures

import grpc
import numpy as np
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

log = logging.getLogger(__name__)


def _parameters_message():
    """``BatchingParameters`` (the fields of TF Serving's message this server
    implements), built at import: the tensorflow-serving-api wheel does not
    ship session_bundle_config.proto."""
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="retrieval_serve/batching_parameters.proto",
        package="retrieval_serve",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = file_proto.message_type.add(name="BatchingParameters")
    int64 = ".google.protobuf.Int64Value"
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    for number, name in enumerate(
        ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
         "num_batch_threads"), start=1):
        message.field.add(name=name, number=number, label=optional,
                          type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                          type_name=int64)
    message.field.add(name="allowed_batch_sizes", number=6,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=optional,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(
        wrappers_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(file_proto)
    return message_factory.MessageFactory(pool).GetPrototype(
        pool.FindMessageTypeByName("retrieval_serve.BatchingParameters"))


BatchingParametersProto = _parameters_message()


class BatchingConfigError(ValueError):
    """An invalid ``--batching_parameters_file``."""


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """Batching settings; defaults apply to fields the file leaves out."""

    max_batch_size: int = 64
    batch_timeout_micros: int = 1000
    num_batch_threads: int = max(1, os.cpu_count() or 1)
    max_enqueued_batches: int = 100
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self):
        where = "--batching_parameters_file"
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise BatchingConfigError(
                    f"{where}: {name} is {getattr(self, name)}; expected >= 1")
        if self.batch_timeout_micros < 0:
            raise BatchingConfigError(
                f"{where}: batch_timeout_micros is {self.batch_timeout_micros}; "
                "expected >= 0")
        sizes = self.allowed_batch_sizes
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[0] < 1
                      or sizes[-1] != self.max_batch_size):
            raise BatchingConfigError(
                f"{where}: allowed_batch_sizes {list(sizes)}; expected increasing "
                f"sizes >= 1 ending at max_batch_size {self.max_batch_size}")

    @classmethod
    def from_text(cls, text: str, source: str) -> BatchingParameters:
        """Parses a ``BatchingParameters`` text proto.

        Raises:
            BatchingConfigError: Naming the file, the bad field and what was expected.
        """
        proto = BatchingParametersProto()
        try:
            text_format.Parse(text, proto)
        except text_format.ParseError as err:
            fields = [f.name for f in proto.DESCRIPTOR.fields]
            raise BatchingConfigError(
                f"{source}: {err}; expected a BatchingParameters text proto with "
                f"fields {fields}") from err
        values = {}
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                     "num_batch_threads"):
            if proto.HasField(name):
                values[name] = getattr(proto, name).value
        values["allowed_batch_sizes"] = tuple(proto.allowed_batch_sizes)
        values["pad_variable_length_inputs"] = proto.pad_variable_length_inputs
        try:
            return cls(**values)
        except BatchingConfigError as err:
            raise BatchingConfigError(str(err).replace(
                "--batching_parameters_file", source)) from None

    @classmethod
    def from_file(cls, path: str) -> BatchingParameters:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise BatchingConfigError(
                f"--batching_parameters_file={path}: cannot be read ({err}); expected "
                "a BatchingParameters text proto") from err
        return cls.from_text(text, f"--batching_parameters_file={path}")


class BatchingError(Exception):
    """A request the batcher refuses, with the gRPC status to answer."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code = code
        self.details = details


RunFn = Callable[[Mapping[str, np.ndarray], Sequence[str]], dict[str, np.ndarray]]


@dataclasses.dataclass
class _Task:
    arrays: Mapping[str, np.ndarray]
    rows: int
    deadline: float | None
    future: futures.Future


@dataclasses.dataclass
class _Batch:
    key: tuple
    run: RunFn
    outputs: tuple[str, ...]
    opened: float
    tasks: list[_Task] = dataclasses.field(default_factory=list)
    rows: int = 0


def _pad_value(array: np.ndarray):
    return b"" if array.dtype == object else array.dtype.type(0)


def _merge(tasks: list[_Task], pad: bool, to_rows: int) -> dict[str, np.ndarray]:
    """Concatenates the tasks' inputs along dimension 0 (scalars are shared),
    padding open dimensions and then the batch itself up to ``to_rows``."""
    merged = {}
    for name, first in tasks[0].arrays.items():
        if first.ndim == 0:
            merged[name] = first
            continue
        parts = [task.arrays[name] for task in tasks]
        if pad:
            widest = np.max([part.shape for part in parts], axis=0)
            parts = [
                part if tuple(part.shape[1:]) == tuple(widest[1:]) else np.pad(
                    part, [(0, 0)] + [(0, w - s) for s, w in
                                      zip(part.shape[1:], widest[1:], strict=True)],
                    constant_values=_pad_value(part))
                for part in parts
            ]
        array = np.concatenate(parts, axis=0)
        if array.shape[0] < to_rows:  # an allowed batch size: repeat row 0
            filler = np.repeat(array[:1], to_rows - array.shape[0], axis=0)
            array = np.concatenate([array, filler], axis=0)
        merged[name] = array
    return merged


class Batcher:
    """Merges concurrent requests into batches and runs them on worker threads.

    Args:
        parameters: The batching settings.
    """

    def __init__(self, parameters: BatchingParameters):
        self.parameters = parameters
        self._open: dict[tuple, _Batch] = {}
        self._ready: collections.deque[_Batch] = collections.deque()
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{n}", daemon=True)
            for n in range(parameters.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def _key(self, run: RunFn, arrays: Mapping[str, np.ndarray],
             outputs: tuple[str, ...]) -> tuple:
        parts = []
        for name in sorted(arrays):
            array = arrays[name]
            if array.ndim == 0:
                parts.append((name, "scalar", array.tobytes() if array.dtype != object
                              else bytes(array.item())))
            elif self.parameters.pad_variable_length_inputs:
                parts.append((name, array.ndim, str(array.dtype)))
            else:
                parts.append((name, tuple(array.shape[1:]), str(array.dtype)))
        return (id(run), outputs, tuple(parts))

    def run(self, run: RunFn, arrays: Mapping[str, np.ndarray], outputs: Sequence[str],
            output_names: Sequence[str], deadline: float | None) -> dict[str, np.ndarray]:
        """Runs one request as part of a batch; blocks until its rows are back.

        Args:
            run: The signature to call with the merged inputs.
            arrays: The request's validated inputs.
            outputs: Requested output names (empty = all).
            output_names: All of the signature's output names.
            deadline: The client's deadline (``time.monotonic()``), None for none.

        Raises:
            BatchingError: INVALID_ARGUMENT for a request over max_batch_size,
                UNAVAILABLE when the queue is full, DEADLINE_EXCEEDED when the
                deadline passed while waiting.
        """
        rows = {array.shape[0] for array in arrays.values() if array.ndim}
        if not rows:  # nothing to batch along: run alone
            return run(arrays, outputs)
        size = rows.pop()
        limit = self.parameters.max_batch_size
        if size > limit:
            raise BatchingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request batch size {size} is larger than the batching max_batch_size "
                f"{limit} (--batching_parameters_file); expected at most {limit} rows")
        names = tuple(outputs) or tuple(output_names)
        task = _Task(arrays, size, deadline, futures.Future())
        key = self._key(run, arrays, names)
        with self._cond:
            if self._stopped:
                raise BatchingError(grpc.StatusCode.UNAVAILABLE, "the server is stopping")
            batch = self._open.get(key)
            if batch is not None and batch.rows + size > limit:
                self._close(key)
                batch = None
            if batch is None:
                if len(self._ready) >= self.parameters.max_enqueued_batches:
                    raise BatchingError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"the batch queue is full ({len(self._ready)} batches waiting, "
                        f"max_enqueued_batches {self.parameters.max_enqueued_batches}); "
                        "retry later")
                batch = _Batch(key, run, names, time.monotonic())
                self._open[key] = batch
            batch.tasks.append(task)
            batch.rows += size
            if batch.rows >= limit or self.parameters.batch_timeout_micros == 0:
                self._close(key)
            self._cond.notify()
        return task.future.result()

    def _close(self, key: tuple) -> None:
        self._ready.append(self._open.pop(key))

    def _next_batch(self) -> _Batch | None:
        """Waits for a full or timed-out batch (holding the lock); None once
        stopped and every formed batch has been taken."""
        timeout_s = self.parameters.batch_timeout_micros / 1e6
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._stopped:
                return None
            now = time.monotonic()
            due = None
            for key, batch in self._open.items():
                if now - batch.opened >= timeout_s:
                    self._close(key)
                    return self._ready.popleft()
                expires = batch.opened + timeout_s
                due = expires if due is None else min(due, expires)
            self._cond.wait(None if due is None else max(0.0, due - now))

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _execute(self, batch: _Batch) -> None:
        now = time.monotonic()
        tasks = []
        for task in batch.tasks:
            if task.deadline is not None and now >= task.deadline:
                task.future.set_exception(BatchingError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"the client's deadline passed {now - task.deadline:.3f}s ago while "
                    "the request waited for its batch; it was not run"))
            else:
                tasks.append(task)
        if not tasks:
            return
        rows = sum(task.rows for task in tasks)
        padded = next((s for s in self.parameters.allowed_batch_sizes if s >= rows), rows)
        try:
            merged = _merge(tasks, self.parameters.pad_variable_length_inputs, padded)
            outputs = batch.run(merged, batch.outputs)
            for name, array in outputs.items():
                if array.ndim == 0 or array.shape[0] != padded:
                    raise BatchingError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"output '{name}' has shape {list(array.shape)}, not batch size "
                        f"{padded} in dimension 0; this signature cannot be batched "
                        "(run without --enable_batching)")
        except Exception as err:  # every request of the batch gets the error
            for task in tasks:
                task.future.set_exception(err)
            return
        start = 0
        for task in tasks:
            end = start + task.rows
            task.future.set_result({name: array[start:end] for name, array in outputs.items()})
            start = end

    def stop(self) -> None:
        """Refuses new requests, runs the batches already formed, then stops
        the worker threads."""
        with self._cond:
            self._stopped = True
            for key in list(self._open):
                self._close(key)
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(5)
