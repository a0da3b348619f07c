"""The benchmark's sizes and targets, read as `settings.NAME` at call time so
that `configure` (the command-line sizes) reaches every module."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_PATH = REPO_ROOT / "benchmarks" / "results" / "serving.json"

# Data.
SEED = 0
NUM_ITEMS = 1_000_000
NUM_QUERIES = 1_000
DIM = 64
NUM_CENTRES = 2_000
# Item = centre + NOISE * N(0, I), centres ~ N(0, I). 0.5 puts every query's
# top-100 inside one cluster (FAISS nprobe=1 reaches 0.95), 1.0 needs ~10% of
# the catalogue scanned; 0.9 sits in between, like trained embeddings.
NOISE = 0.9
K = 100

# Indexes. ScaNN's settings are chosen by the export's own sweep
# (models/scann_tuning.py: its grid of leaves, leaves searched, re-ordering
# and dimensions per block), measuring this many leaves-searched values past
# the first that meets the target, for the frontier.
SCANN_PAST_TARGET = 3
NUM_LEAVES = 1_000  # FAISS IVF lists (about sqrt(NUM_ITEMS))
FAISS_NPROBE_GRID = (1, 2, 4, 8, 12, 16, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256)
FAISS_TRAIN_SAMPLE = 100_000

# Serving module.
EXCLUDE_HISTORY = 10  # most recent request-history items removed from answers
FETCH_K = K + EXCLUDE_HISTORY
HISTORY_LEN = 10

# Timing.
WARMUP_CALLS = 20
LATENCY_CALLS = 1_000  # one pass over the queries; p99 = 10th-slowest call
SWEEP_LATENCY_CALLS = 100
INTERLEAVE_BLOCKS = 10  # ScaNN, FAISS and the no-op signature alternate in blocks
BATCH = 64
MAX_BATCHES = 30
BATCH_SECONDS = 5.0
RECALL_BATCH = 50  # queries per call when measuring recall (brute force: 50 x 1M scores)
GRPC_CONCURRENCY = (1, 8, 32)
GRPC_SECONDS = 10.0
GRPC_MAX_REQUESTS = 2_000
GRPC_WARMUP_PER_THREAD = 5
GRPC_TIMEOUT_S = 10.0
SERVER_READY_TIMEOUT_S = 300.0
READY_PREFIX = "retrieval-serve: serving model"

# Targets.
RECALL_TARGET = 0.95
SPEEDUP_TARGET = 10.0
GRPC_P99_TARGET_MS = 10.0
GRPC_P50_TARGET_MS = 3.0
# Throughput goal at 8 clients: this many times the 229 requests/s the eager
# server answered with the MovieTweetings model, with p99 <= 4 x p50.
GRPC_BASELINE_RPS_8 = 229.0
GRPC_THROUGHPUT_FACTOR = 3.0
GRPC_TAIL_FACTOR = 4.0
# --batching_parameters_file of the batching rows.
BATCHING_PARAMETERS = (
    "max_batch_size { value: 32 }\n"
    "batch_timeout_micros { value: 500 }\n"
    "num_batch_threads { value: 2 }\n"
    "max_enqueued_batches { value: 100 }\n"
    "pad_variable_length_inputs: true\n"
)


def configure(num_items: int, num_leaves: int, latency_calls: int, dim: int = DIM) -> None:
    """Sets the run's size (the defaults are the 1M-item run of the results file)."""
    global NUM_ITEMS, NUM_LEAVES, LATENCY_CALLS, DIM
    if num_items < 10 * FETCH_K or latency_calls < INTERLEAVE_BLOCKS:
        raise SystemExit(f"--num_items must be >= {10 * FETCH_K} and --latency_calls "
                         f">= {INTERLEAVE_BLOCKS}")
    NUM_ITEMS = num_items
    DIM = dim
    NUM_LEAVES = num_leaves or round(num_items ** 0.5)
    LATENCY_CALLS = latency_calls

def export_dim() -> int:
    """The default model's export width ("embedding_dim" in the export
    metadata): its ensemble's concatenated towers (model.ensemble.size x
    model.towers.embedding_dim) plus the trending prior's column, which the
    default training learns and serves (models/towers_export.py)."""
    from models.config import ModelConfig

    config = ModelConfig()
    return config.ensemble.size * config.towers.embedding_dim + 1

def parameters() -> dict:
    """The benchmark's fixed parameters."""
    from models import scann_tuning

    return {"num_items": NUM_ITEMS, "num_queries": NUM_QUERIES, "dim": DIM,
            "num_centres": NUM_CENTRES, "noise": NOISE, "seed": SEED, "k": K,
            "faiss_nlist": NUM_LEAVES, "export_dim_of_default_model": export_dim(),
            "scann_grid": {"leaves_x_sqrt_n": scann_tuning.LEAVES_FACTORS,
                           "dimensions_per_block": scann_tuning.DIMENSIONS_PER_BLOCK,
                           "leaves_to_search_fractions": scann_tuning.SEARCH_FRACTIONS,
                           "reorder_x_fetch_k": scann_tuning.REORDER_FACTORS,
                           "past_target": SCANN_PAST_TARGET},
            "faiss_nprobe_grid": FAISS_NPROBE_GRID, "recall_target": RECALL_TARGET,
            "warmup_calls": WARMUP_CALLS, "latency_calls": LATENCY_CALLS,
            "interleave_blocks": INTERLEAVE_BLOCKS,
            "setting_rule": ("ScaNN: the export's chooser, lowest batch-1 p50 with recall >= "
                             "target; FAISS: fewest nprobe with recall >= target"),
            "throughput_batch": BATCH, "exclude_history": EXCLUDE_HISTORY,
            "grpc_concurrency": GRPC_CONCURRENCY, "grpc_seconds_per_level": GRPC_SECONDS,
            "grpc_max_requests_per_level": GRPC_MAX_REQUESTS}
