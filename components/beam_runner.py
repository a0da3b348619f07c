"""The local Beam runner (Beam 2.59's FnApiRunner): a data-race guard, and a
check whether a pipeline runs on it (`is_local_runner`; ClickExampleGen then
shuffles through files, components/file_shuffle.py).

The race: the FnApiRunner hands each stage's input to its SDK workers through a
`TimeBasedBufferingClosableOutputStream` (the runner's data servicer is built
with `worker_handlers.DATA_BUFFER_TIME_LIMIT_MS`, 1000 ms). A background
thread flushes that stream every second: it copies the buffer, sends the copy,
then clears the buffer, while the runner thread keeps writing into it without
a lock. Whatever is written between the copy and the clear is dropped without
an error. It only bites when writing one stage input takes longer than the
flush period, i.e. stage inputs of hundreds of MB: ClickExampleGen lost whole
runs of users at 1M clicks with 2 workers (docs/architecture.md has the
measurements and the reproduction).

With the limit at 0 the runner builds size-flushed streams with no flusher
thread: data leaves when the buffer is full or the stream is closed, which is
all a batch pipeline needs. Other runners (Dataflow, Flink, Spark) do not use
this code.
"""

from __future__ import annotations


def disable_time_based_flush() -> None:
    """Makes the local runner's data channels flush by size only (idempotent).

    Must run before the pipeline starts: the runner reads the limit when it
    builds its gRPC data servicer.
    """
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0


# Runner names (as given to --runner) that execute in this machine's memory.
LOCAL_RUNNERS = ("directrunner", "direct", "switchingdirectrunner", "fnapirunner",
                 "bundlebaseddirectrunner")


def is_local_runner(beam_pipeline_args: list[str] | None) -> bool:
    """Whether `--runner` (default: DirectRunner) is Beam's local runner."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = PipelineOptions(list(beam_pipeline_args or [])).view_as(StandardOptions).runner
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1].lower() in LOCAL_RUNNERS
