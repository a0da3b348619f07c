"""Artifact types of the project's own components.

Names follow the KFP v2 schema-title form `<namespace>.<Name>`, which
KubeflowV2DagRunner requires for custom types."""

from __future__ import annotations

from tfx.types import artifact


class VocabStats(artifact.Artifact):
    """User/item vocabularies with click counts and sampling probabilities.

    Files: see `models.vocab` (items.tsv, users.tsv, stats.json).
    """

    TYPE_NAME = "retrieval.VocabStats"


class QuarantinedClicks(artifact.Artifact):
    """Rows ClickExampleGen could not use, one JSON object per line with its
    reason, plus ``ingestion.json`` with the per-file counters."""

    TYPE_NAME = "retrieval.QuarantinedClicks"


class DataValidation(artifact.Artifact):
    """The validation gate's verdict on a run's click examples: ``validation.json``
    (blocking, allowed and warn-only anomalies) and a copy of the statistics
    validated (``statistics/Split-<name>/FeatureStats.pb``), the drift
    reference of later runs. Only written when nothing blocks."""

    TYPE_NAME = "retrieval.DataValidation"


class RecallChannels(artifact.Artifact):
    """Recall channels fitted beside a two-tower model and their merge
    settings: recall.json, trending.npy, item_cf.npz, wals.npz
    (models/channels/store.py)."""

    TYPE_NAME = "retrieval.RecallChannels"


class Ranker(artifact.Artifact):
    """The DeepFM ranker trained beside the recall channels: ranker.json,
    its vocabularies, tables and weights (models/ranking/ranker.py)."""

    TYPE_NAME = "retrieval.Ranker"


# The Model custom property naming the DataValidation its Trainer consumed:
# the statistics later runs measure drift against.
DATA_VALIDATION_PROPERTY = "data_validation"


def optional_single(input_dict: dict, key: str, component: str) -> artifact.Artifact | None:
    """The one artifact of an optional executor input, or None when absent.

    Raises:
      ValueError: the input holds more than one artifact.
    """
    artifacts = input_dict.get(key) or []
    if len(artifacts) > 1:
        raise ValueError(f"{component} input {key!r}: expected at most one artifact, got "
                         f"{len(artifacts)}")
    return artifacts[0] if artifacts else None
