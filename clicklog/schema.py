"""The declared schema of a click log: which column holds what, and its type.

Defaults match the plain ``user_id,item_id,timestamp[,weight]`` log. A
pipeline config declares another layout under ``ingestion.schema``:

    schema:
      user_id: uid                 # column names of the required fields
      item_id: movie
      timestamp: ts
      timestamp_unit: milliseconds # seconds | milliseconds | iso8601
      weight: rating               # optional column (absent/empty -> 1.0)
      event_type: action           # optional column; see ingestion.event_types
      impressed_items: shown       # optional column: items shown with the click
      user_features: {country: string}
      item_features: {genres: string_list}
      context_features: {device: string, hour: int}

`impressed_items` names a column of click rows holding the items shown in the
same request, in position order (a list in JSONL / Parquet / TFRecord,
``|``-separated text in CSV): impressions at the click's time, as impression
rows would give (components/click_example_gen/impressions.py).

Feature columns become tf.Example features of the same name. Types:
``string``, ``int``, ``float``, ``string_list`` (a list in JSONL / Parquet /
TFRecord, ``|``-separated text in CSV). A missing or empty feature value takes
the type's default (``""``, 0, 0.0, []); a value of the wrong type rejects
the row with reason ``bad_feature``. Tabs and line breaks inside string values
become spaces.
"""

from __future__ import annotations

import dataclasses
import datetime
import math

from clicklog.config import Config, setting

FEATURE_TYPES = ("string", "int", "float", "string_list")
TIMESTAMP_UNITS = ("seconds", "milliseconds", "iso8601")
LIST_SEPARATOR = "|"
# Feature names ClickExampleGen writes itself; declared features may not reuse them.
RESERVED_FEATURES = ("user_id", "item_id", "timestamp", "weight", "history", "event_type",
                     "seconds_since_previous_click", "item_age_seconds", "history_at_cutoff",
                     "impressed_negatives")


class ValueRejected(ValueError):
    """A field value that does not have the declared type; `reason` is a counter key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _feature_setting() -> tuple:
    return setting((), mapping=True, choices=FEATURE_TYPES)


@dataclasses.dataclass(frozen=True)
class ClickSchema(Config):
    """Column names and types of a click log (see the module docstring)."""

    KEY = "ingestion.schema"
    user_id: str = "user_id"
    item_id: str = "item_id"
    timestamp: str = "timestamp"
    timestamp_unit: str = setting("seconds", choices=TIMESTAMP_UNITS)
    weight: str | None = "weight"
    event_type: str | None = None
    impressed_items: str | None = None
    user_features: tuple[tuple[str, str], ...] = _feature_setting()
    item_features: tuple[tuple[str, str], ...] = _feature_setting()
    context_features: tuple[tuple[str, str], ...] = _feature_setting()

    def check(self) -> None:
        for name in ("user_id", "item_id", "timestamp"):
            if not getattr(self, name):
                raise self.error(name, "the name of the column holding it")
        for section_name in ("user_features", "item_features", "context_features"):
            for name, _ in getattr(self, section_name):
                if name in RESERVED_FEATURES:
                    raise self.error(section_name, f"feature names other than the ones "
                                     f"ClickExampleGen writes itself {list(RESERVED_FEATURES)}")
        names = [n for n, _ in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise self.error("user_features", f"each feature declared once; {duplicates} appear "
                             "in more than one of user_features, item_features, context_features")

    @property
    def features(self) -> tuple[tuple[str, str], ...]:
        """All declared (feature name, type), user then item then context."""
        return self.user_features + self.item_features + self.context_features

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (self.user_id, self.item_id, self.timestamp)


def parse_timestamp(value: object, unit: str) -> float:
    """A raw timestamp value -> unix seconds (float; range checked by the caller).

    A `datetime` (a Parquet timestamp column) is taken as is, naive = UTC;
    other values are read in `unit`.

    Raises:
      ValueRejected: with reason ``bad_timestamp``.
    """
    if isinstance(value, datetime.datetime):  # Parquet timestamp columns
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if unit == "iso8601":
        text = str(value).strip()
        try:
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueRejected("bad_timestamp", f"{value!r} is not an ISO-8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return moment.timestamp()
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueRejected("bad_timestamp", f"{value!r} is not a number of {unit}") from None
    if not math.isfinite(number):
        raise ValueRejected("bad_timestamp", f"{value!r} is not finite")
    return number / 1000.0 if unit == "milliseconds" else number


def _one_line(value: object) -> str:
    """Tabs and line breaks become spaces: vocabulary files are one value per line."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).replace("\t", " ").splitlines()).strip()


def parse_feature(name: str, kind: str, value: object):
    """A raw feature value -> its declared type; missing/empty -> the type's default.

    Raises:
      ValueRejected: with reason ``bad_feature``, naming the feature and value.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {"string": "", "int": 0, "float": 0.0, "string_list": ()}[kind]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if kind == "string_list":
        if isinstance(value, (list, tuple)):
            return tuple(_one_line(v) for v in value if str(v).strip())
        return tuple(_one_line(v) for v in str(value).split(LIST_SEPARATOR) if v.strip())
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueRejected("bad_feature", f"{name}={value!r}: expected one {kind}")
        value = value[0]
    try:
        if kind == "string":
            return _one_line(value)
        if kind == "int":
            number = float(str(value).strip())
            if not math.isfinite(number) or number != int(number) or abs(number) >= 2**63:
                raise ValueError
            return int(number)
        number = float(str(value).strip())
        if not math.isfinite(number):
            raise ValueError
        return number
    except ValueError:
        raise ValueRejected("bad_feature", f"{name}={value!r}: expected {kind}") from None
