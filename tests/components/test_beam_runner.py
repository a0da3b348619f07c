"""The local runner's data channel: the stock time-based flush drops writes, the guarded one not."""

import queue
import time

import pytest
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.worker import data_plane

from components import beam_runner

CHUNK = b"x" * 50_000
CHUNKS = 400


class _SlowQueue(queue.Queue):
    """The runner's send queue when the machine is busy: each put takes a while."""

    def put(self, item, block=True, timeout=None):
        time.sleep(0.002)
        super().put(item, block, timeout)


def _bytes_delivered(time_limit_ms: int) -> tuple[int, bool]:
    """Writes CHUNKS chunks to a runner-side output stream the way the runner
    sends a stage input; -> (data bytes that reached the send queue, whether
    the end-of-stream marker came last)."""
    channel = data_plane._GrpcDataChannel(time_limit_ms)
    channel._to_send = _SlowQueue()
    stream = channel.output_stream("bundle", "read")
    for _ in range(CHUNKS):
        stream.write(CHUNK)
        time.sleep(0.0005)  # the runner thread does other work between chunks
    stream.close()
    sent = []
    while not channel._to_send.empty():
        sent.append(channel._to_send.get_nowait())
    return sum(len(element.data) for element in sent), bool(sent) and sent[-1].is_last


def test_stock_time_based_flush_loses_writes_that_race_it():
    # Beam 2.59: the flusher thread copies, sends, then clears the buffer with
    # no lock against the writer. If a Beam upgrade fixes this, this test fails
    # and components/beam_runner.py can go.
    delivered = [_bytes_delivered(time_limit_ms=20)[0] for _ in range(3)]
    assert min(delivered) < CHUNKS * len(CHUNK), delivered


def test_guard_makes_the_runner_flush_by_size_only_and_deliver_everything(monkeypatch):
    monkeypatch.setattr(worker_handlers, "DATA_BUFFER_TIME_LIMIT_MS", 1000)
    beam_runner.disable_time_based_flush()
    limit = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
    assert limit == 0
    stream = data_plane._GrpcDataChannel(limit).output_stream("bundle", "read")
    assert not isinstance(stream, data_plane.TimeBasedBufferingClosableOutputStream)
    assert _bytes_delivered(limit) == (CHUNKS * len(CHUNK), True)


@pytest.mark.parametrize("args, local", [
    (None, True), ([], True), (["--direct_num_workers=2"], True),
    (["--runner=DirectRunner"], True), (["--runner", "direct"], True),
    (["--runner=DataflowRunner", "--project=p"], False), (["--runner=FlinkRunner"], False),
])
def test_is_local_runner(args, local):
    assert beam_runner.is_local_runner(args) is local
