"""The serving latency benchmark (`python -m benchmarks.serving_latency`)."""
