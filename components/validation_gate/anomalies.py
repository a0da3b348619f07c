"""Which anomalies block a run, and the message that stops it.

Anomalies come from three places: ExampleValidator's per-split `Anomalies`
(the statistics against the curated schema), TFDV's drift and skew
comparators (`comparisons`), and the gate's own timestamp check
(`future_clicks`). Each becomes one `Anomaly`; `partition` splits them into
blocking, allowed (``validation.allow_anomalies``) and warn-only
(``validation.warn_only``) ones, and `DataValidationError` names each
blocking one with the config key that relaxes it.
"""

from __future__ import annotations

import dataclasses
import datetime

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from clicklog.errors import InputError
from components.validation_gate.config import CLICK_IN_FUTURE, ValidationConfig

DATASET = "(dataset)"  # the feature name of dataset-level anomalies
DRIFT, SKEW = "drift", "skew"
_COMPARATOR_KINDS = ("COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
                     "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH")


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One anomaly of one feature in one split.

    `check` is where it came from: ``schema``, ``drift``, ``skew`` or
    ``timestamp``; it decides which key relaxes it besides allow_anomalies.
    """

    feature: str
    kind: str
    split: str
    description: str
    check: str = "schema"

    @property
    def allowance(self) -> str:
        return f"{self.feature}:{self.kind}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def relax_key(anomaly: Anomaly, config: ValidationConfig) -> str:
    """The config setting(s) that would let `anomaly` through."""
    allow = f"validation.allow_anomalies=[{anomaly.allowance}]"
    if anomaly.check in (DRIFT, SKEW):
        threshold = dict(getattr(config, anomaly.check)).get(anomaly.feature)
        return f"validation.{anomaly.check}.{anomaly.feature} (now {threshold:g}) or {allow}"
    if anomaly.kind == CLICK_IN_FUTURE:
        return f"validation.max_future_seconds (now {config.max_future_seconds}) or {allow}"
    return allow


def line(anomaly: Anomaly, config: ValidationConfig) -> str:
    """``feature: KIND in split S: description; relax with KEY``."""
    description = " ".join(anomaly.description.split())
    return (f"{anomaly.feature}: {anomaly.kind} in split {anomaly.split}: {description}; "
            f"relax with {relax_key(anomaly, config)}")


def from_proto(anomalies: anomalies_pb2.Anomalies, split: str,
               check: str = "schema") -> list[Anomaly]:
    """One `Anomaly` per (feature, reason) of a TFDV `Anomalies`, sorted."""
    found = []
    for feature, info in anomalies.anomaly_info.items():
        for reason in info.reason or [anomalies_pb2.AnomalyInfo.Reason(
                type=anomalies_pb2.AnomalyInfo.UNKNOWN_TYPE, description=info.description)]:
            kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
            found.append(Anomaly(feature, kind, split, reason.description or info.description,
                                 check))
    if anomalies.HasField("dataset_anomaly_info"):
        for reason in anomalies.dataset_anomaly_info.reason:
            found.append(Anomaly(DATASET, anomalies_pb2.AnomalyInfo.Type.Name(reason.type), split,
                                 reason.description, check))
    return sorted(found, key=lambda a: (a.feature, a.kind, a.split))


def _feature(schema: schema_pb2.Schema, name: str, key: str) -> schema_pb2.Feature:
    for feature in schema.feature:
        if feature.name == name:
            return feature
    raise InputError(f"{key}={name!r}: expected a feature of the schema "
                     f"({sorted(f.name for f in schema.feature)})")


def with_comparators(schema: schema_pb2.Schema, check: str,
                     thresholds: tuple[tuple[str, float], ...]) -> schema_pb2.Schema:
    """A copy of `schema` with a drift or skew comparator per feature:
    L-infinity distance for strings, Jensen-Shannon divergence for numbers."""
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    for name, threshold in thresholds:
        feature = _feature(out, name, f"validation.{check}")
        comparator = feature.drift_comparator if check == DRIFT else feature.skew_comparator
        if feature.type == schema_pb2.BYTES:
            comparator.infinity_norm.threshold = threshold
        else:
            comparator.jensen_shannon_divergence.threshold = threshold
    return out


def comparisons(validate, schema: schema_pb2.Schema, check: str,
                thresholds: tuple[tuple[str, float], ...],
                current: statistics_pb2.DatasetFeatureStatisticsList,
                control: statistics_pb2.DatasetFeatureStatisticsList,
                split: str) -> list[Anomaly]:
    """Drift (`control` = the previous run's statistics of `split`) or skew
    (`control` = this run's eval split, `current` its train split) anomalies.

    Args:
      validate: `tfdv.validate_statistics` (passed in, so this module does
        not import TFDV's Beam-heavy API).
    """
    if not thresholds:
        return []
    compared = with_comparators(schema, check, thresholds)
    if check == DRIFT:
        result = validate(current, compared, previous_statistics=control)
    else:
        result = validate(current, compared, serving_statistics=control)
    return [a for a in from_proto(result, split, check) if a.kind in _COMPARATOR_KINDS]


def _numeric_max(statistics: statistics_pb2.DatasetFeatureStatisticsList,
                 name: str) -> float | None:
    for dataset in statistics.datasets:
        for feature in dataset.features:
            path = feature.path.step[0] if feature.path.step else feature.name
            if path == name and feature.HasField("num_stats"):
                return feature.num_stats.max
    return None


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def future_clicks(statistics: statistics_pb2.DatasetFeatureStatisticsList, split: str,
                  run_time: float, config: ValidationConfig) -> list[Anomaly]:
    """CLICK_IN_FUTURE when the split's newest `timestamp` is later than the
    run's start plus ``validation.max_future_seconds``."""
    newest = _numeric_max(statistics, "timestamp")
    if config.max_future_seconds is None or newest is None:
        return []
    limit = run_time + config.max_future_seconds
    if newest <= limit:
        return []
    return [Anomaly("timestamp", CLICK_IN_FUTURE, split,
                    f"newest click at {int(newest)} ({_utc(newest)}) is "
                    f"{int(newest - run_time)} s after the run started ({_utc(run_time)}); "
                    f"expected clicks up to {config.max_future_seconds} s after it",
                    "timestamp")]


@dataclasses.dataclass(frozen=True)
class Verdict:
    blocking: tuple[Anomaly, ...]
    allowed: tuple[Anomaly, ...]
    warned: tuple[Anomaly, ...]

    def to_dict(self) -> dict:
        return {name: [a.to_dict() for a in getattr(self, name)]
                for name in ("blocking", "allowed", "warned")}


def partition(anomalies: list[Anomaly], config: ValidationConfig) -> Verdict:
    """Blocking, allowed (allow_anomalies) and warn-only (warn_only kinds)."""
    allowed = config.allowed
    blocking, allowing, warned = [], [], []
    for anomaly in anomalies:
        if (anomaly.feature, anomaly.kind) in allowed:
            allowing.append(anomaly)
        elif anomaly.kind in config.warn_only:
            warned.append(anomaly)
        else:
            blocking.append(anomaly)
    return Verdict(tuple(blocking), tuple(allowing), tuple(warned))


class DataValidationError(InputError):
    """Blocking anomalies: the message has one line per anomaly."""

    def __init__(self, blocking: tuple[Anomaly, ...], config: ValidationConfig, schema_path: str):
        blocking = tuple(sorted(blocking, key=lambda a: (a.feature, a.kind, a.split)))
        lines = [line(a, config) for a in blocking]
        super().__init__(
            f"click examples failed validation against the schema {schema_path!r} "
            f"({len(blocking)} blocking anomal{'y' if len(blocking) == 1 else 'ies'}; "
            "training and pushing stopped; --allow-anomaly FEATURE:KIND overrides one):\n"
            + "\n".join(f"  {text}" for text in lines))
        self.anomalies = blocking
