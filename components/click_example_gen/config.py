"""ClickExampleGen's settings: the `ingestion` section (docs/configuration.md)."""

from __future__ import annotations

import dataclasses

from clicklog import formats
from clicklog.config import Config, section, setting
from clicklog.schema import ClickSchema
from components.click_example_gen.splits import split_names

SPLIT_BY = ("time", "user")
# How clicks are grouped by user: `files` (file_shuffle.py, memory bounded by
# one shard), `group_by_key` (the runner's shuffle), or `auto`: files on
# Beam's local runner, the runner's shuffle elsewhere.
SHUFFLES = ("auto", "files", "group_by_key")
# What a zero-byte, unreadable, truncated or corrupt input file does (inputs.py).
CORRUPT_FILES = ("fail", "quarantine")


def _event_types(value) -> list:
    """A list of accepted types (weight factor 1) or a {type: factor} mapping -> pairs."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, (list, tuple)):
        return [tuple(v) if isinstance(v, (list, tuple)) else (v, 1.0) for v in value]
    raise ValueError(value)


@dataclasses.dataclass(frozen=True)
class IngestionConfig(Config):
    """Settings of ClickExampleGen."""

    KEY = "ingestion"
    input_format: str = setting("auto", choices=("auto",) + formats.FORMATS)
    schema: ClickSchema = section(ClickSchema)  # column names/types; clicklog/schema.py
    # Most recent previous items kept per click.
    history_length: int = setting(50, min=1)
    # Splits: see splits.py.
    split_by: str = setting("time", choices=SPLIT_BY)
    eval_fraction: float = setting(0.1, gt=0.0, lt=1.0)
    test_fraction: float = setting(0.0, min=0.0, lt=1.0)
    eval_start_timestamp: int | None = None
    test_start_timestamp: int | None = None
    split_seed: int = 0
    # Cleaning: clicks outside [min_timestamp, max_timestamp) are dropped.
    min_timestamp: int | None = None
    max_timestamp: int | None = None
    max_clicks_per_user: int = setting(0, min=0)  # 0 = no cap; a user above it is dropped
    # Accepted event types (list) or {type: weight factor}; empty = any type.
    event_types: tuple[tuple[str, float], ...] = setting(
        (), mapping=True, min=0.0, convert=_event_types,
        expected="a list of event types, or a mapping of event type to weight factor >= 0")
    # Event types that are impressions, not clicks: items shown to the user
    # (``impression``), or retrieved but dropped by a ranker
    # (``dropped_by_ranker``). Their rows are validated and quarantined like
    # clicks, counted apart, and never become examples, history, vocabulary
    # counts or popularity; an impressed item the user did not click becomes
    # a per-click negative (`impressed_negatives`, impressions.py).
    impression_event_types: tuple[str, ...] = ()
    # A click's impressed negatives: the user's impressions at most this many
    # seconds before it (or at the same time).
    impression_window_seconds: int = setting(1800, min=0)
    # The most recent impressed negatives kept per click.
    max_impressed_negatives: int = setting(50, min=1)
    # Ingestion fails when more than this share of a file's rows is quarantined.
    max_bad_fraction: float = setting(0.5, min=0.0, max=1.0)
    # ... or more than this share of all rows (filters the config asks for,
    # min/max_timestamp and event_types, are not counted).
    max_quarantine_fraction: float = setting(0.05, min=0.0, max=1.0)
    # A zero-byte, unreadable, truncated or corrupt file: `fail` stops the
    # run naming it; `quarantine` sets the whole file aside with its reason
    # (counted in the report) and reads the others.
    corrupt_files: str = setting("fail", choices=CORRUPT_FILES)
    # A CSV record still inside a quoted field after this many lines is a
    # stray quote: its first line is quarantined.
    csv_max_record_lines: int = setting(formats.MAX_CSV_RECORD_LINES, min=1)
    # Shuffle by user (SHUFFLES); with files, about this much input per shard.
    shuffle: str = setting("auto", choices=SHUFFLES)
    shuffle_shard_mb: int = setting(32, min=1)

    def check(self) -> None:
        if self.test_fraction >= 1.0 - self.eval_fraction:
            raise self.error("test_fraction", f"a number in [0, 1 - eval_fraction="
                             f"{1.0 - self.eval_fraction:g})")
        eval_start, test_start = self.eval_start_timestamp, self.test_start_timestamp
        if self.split_by == "user" and (eval_start is not None or test_start is not None):
            raise self.error("eval_start_timestamp", "null with split_by=user (a user holdout "
                             "takes eval_fraction/test_fraction)")
        if test_start is not None and (eval_start is None or test_start <= eval_start):
            raise self.error("test_start_timestamp", f"a cut-off after eval_start_timestamp "
                             f"(got {eval_start})")
        if eval_start is not None and test_start is None and self.test_fraction:
            raise self.error("test_fraction", "0 with eval_start_timestamp; give "
                             "test_start_timestamp instead (fixed cut-offs or fractions, not both)")
        if (self.min_timestamp is not None and self.max_timestamp is not None
                and self.min_timestamp >= self.max_timestamp):
            raise self.error("min_timestamp", f"a time before max_timestamp={self.max_timestamp}")
        if self.event_types and not self.schema.event_type:
            raise self.error("event_types", "[] unless ingestion.schema.event_type names the "
                             "column holding the type")
        if self.impression_event_types and not self.schema.event_type:
            raise self.error("impression_event_types", "[] unless ingestion.schema.event_type "
                             "names the column holding the type")
        both = sorted(set(self.impression_event_types) & {t for t, _ in self.event_types})
        if both:
            raise self.error("impression_event_types", f"types that are not also click types "
                             f"in ingestion.event_types (both: {both})")
        if any(not t for t in self.impression_event_types):
            raise self.error("impression_event_types", "non-empty event type names")

    @property
    def with_test(self) -> bool:
        return bool(self.test_fraction) or self.test_start_timestamp is not None

    @property
    def splits(self) -> list[str]:
        return split_names(self.with_test)

    @property
    def event_weights(self) -> dict[str, float] | None:
        return dict(self.event_types) if self.event_types else None

    @property
    def with_impressions(self) -> bool:
        """Impressions come as rows (impression_event_types) or lists
        (schema.impressed_items): the examples carry `impressed_negatives`."""
        return bool(self.impression_event_types or self.schema.impressed_items)

    @property
    def accepted_event_types(self) -> dict[str, float] | None:
        """Every accepted type -> weight factor (impressions 1.0); None accepts any."""
        if not self.event_types:
            return None
        return {**dict(self.event_types), **{t: 1.0 for t in self.impression_event_types}}
