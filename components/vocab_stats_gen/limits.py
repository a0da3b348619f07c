"""Vocabulary limits: which entries are kept, and in which order (count
descending, ties by the smaller key), in plain Python and in Beam's `Top.Of`."""

from __future__ import annotations


def keep_top(counts: list[tuple[str, float]], min_count: int, max_size: int) -> list:
    """Entries with count >= min_count, the `max_size` largest (0 = all); ties by key."""
    kept = sorted((kv for kv in counts if kv[1] >= min_count), key=lambda kv: (-kv[1], kv[0]))
    return kept[:max_size] if max_size else kept


def top_key(key):
    """Sort key that makes `beam.combiners.Top.Of` break count ties by the
    smaller key, as `keep_top` does."""
    text = key if isinstance(key, str) else "\x00".join(key)
    # -ord(ch) <= 0 < 1: a key that is a prefix of another sorts as smaller, as in keep_top.
    return tuple(-ord(ch) for ch in text) + (1,)
