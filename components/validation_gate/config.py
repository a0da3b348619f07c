"""The validation gate's settings: the `validation` section (docs/configuration.md)."""

from __future__ import annotations

import dataclasses

from tensorflow_metadata.proto.v0 import anomalies_pb2

from clicklog.config import Config, setting

# Kinds the gate finds itself, besides TFDV's anomaly types.
CLICK_IN_FUTURE = "CLICK_IN_FUTURE"
GATE_KINDS = (CLICK_IN_FUTURE,)
# A feature the schema does not list reaches nothing the schema vouches for
# (the Trainer reads the features it is configured with, ClickExampleGen
# writes the declared ones): reported, not blocking, unless configured so.
DEFAULT_WARN_ONLY = ("SCHEMA_NEW_COLUMN",)


def anomaly_kinds() -> tuple[str, ...]:
    """Every kind an anomaly can have: TFDV's `AnomalyInfo.Type` names and GATE_KINDS."""
    return tuple(anomalies_pb2.AnomalyInfo.Type.keys()) + GATE_KINDS


def parse_allowance(text: str) -> tuple[str, str]:
    """``FEATURE:KIND`` -> (feature, kind).

    Raises:
      ValueError: not of that form, or KIND is not an anomaly kind.
    """
    if not isinstance(text, str) or text.count(":") != 1:
        raise ValueError(text)
    feature, kind = text.split(":")
    if not feature or kind not in anomaly_kinds():
        raise ValueError(text)
    return feature, kind


def _allowances(value) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(value)
    for text in value:
        parse_allowance(text)
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class ValidationConfig(Config):
    """Settings of the ValidationGate (and the schema ImportSchemaGen imports)."""

    KEY = "validation"
    # The curated schema (.pbtxt). null: the repository's schema of the click
    # example layout, configs/schema/clicks.pbtxt.
    schema_path: str | None = setting(None, path=True)
    # {feature: threshold}: distance of the feature's distribution from the
    # statistics of the run that trained the last blessed model, per split
    # (L-infinity for string features, Jensen-Shannon divergence for numbers).
    drift: tuple[tuple[str, float], ...] = setting((), mapping=True, gt=0.0, max=1.0)
    # {feature: threshold}: the same distances between this run's train and
    # eval splits (the clicks trained on against the clicks served after them).
    skew: tuple[tuple[str, float], ...] = setting((), mapping=True, gt=0.0, max=1.0)
    # FEATURE:KIND anomalies that do not block the run (logged and recorded);
    # `retrieval-pipeline --allow-anomaly FEATURE:KIND` appends here.
    allow_anomalies: tuple[str, ...] = setting(
        (), convert=_allowances,
        expected="a list of FEATURE:KIND, KIND a TFDV anomaly type name (e.g. "
                 "item_id:COMPARATOR_L_INFTY_HIGH) or one of " + str(list(GATE_KINDS)))
    # Anomaly kinds that never block (logged and recorded).
    warn_only: tuple[str, ...] = setting(DEFAULT_WARN_ONLY, choices=anomaly_kinds)
    # A click later than the run's start plus this many seconds is an
    # anomaly (CLICK_IN_FUTURE on `timestamp`); null: no check.
    max_future_seconds: int | None = setting(3600, min=0)

    @property
    def allowed(self) -> frozenset[tuple[str, str]]:
        return frozenset(parse_allowance(text) for text in self.allow_anomalies)
