"""The typed configuration machinery: every value is checked as it enters."""

from __future__ import annotations

import dataclasses

import pytest

from clicklog.config import Config, ConfigError, parse, section, setting, to_dict


@dataclasses.dataclass(frozen=True)
class Inner(Config):
    KEY = "outer.inner"
    width: int = setting(2, min=1)
    names: tuple[str, ...] = setting(("a",), choices=("a", "b"))


@dataclasses.dataclass(frozen=True)
class Outer(Config):
    KEY = "outer"
    flag: bool = False
    rate: float = setting(0.5, gt=0.0, lt=1.0)
    count: int = setting(0, min=0, max=10)
    kind: str = setting("x", choices=("x", "y"))
    limit: int | None = None
    sizes: tuple[int, ...] = setting((1, 2), min=1)
    weights: tuple[tuple[str, float], ...] = setting((), mapping=True, min=0.0)
    inner: Inner = section(Inner)

    def check(self) -> None:
        if self.flag and self.count == 0:
            raise self.error("count", "a count > 0 when flag is true")


@pytest.mark.parametrize("values,message", [
    ({"flag": "maybe"}, "outer.flag='maybe': expected true or false"),
    ({"flag": 1}, "outer.flag=1: expected true or false"),
    ({"rate": 0}, r"outer.rate=0: expected a number in \(0, 1\)"),
    ({"rate": float("nan")}, r"outer.rate=nan: expected a number in \(0, 1\)"),
    ({"rate": True}, r"outer.rate=True: expected a number in \(0, 1\)"),
    ({"count": 11}, r"outer.count=11: expected an integer in \[0, 10\]"),
    ({"count": 2.0}, r"outer.count=2.0: expected an integer in \[0, 10\]"),
    ({"kind": "z"}, r"outer.kind='z': expected one of \['x', 'y'\]"),
    ({"limit": "5"}, "outer.limit='5': expected an integer or null"),
    ({"sizes": [1, 0]}, "outer.sizes=\\[1, 0\\]: expected a list of integers >= 1"),
    ({"sizes": "12"}, "outer.sizes='12': expected a list of integers >= 1"),
    ({"weights": {"a": -1}}, "outer.weights={'a': -1}: expected a mapping of name to numbers >= 0"),
    ({"inner": {"width": 0}}, "outer.inner.width=0: expected an integer >= 1"),
    ({"inner": {"names": ["c"]}}, r"outer.inner.names=\['c'\]: expected a list of values from"),
    ({"inner": 3}, "outer.inner=3: expected a mapping of outer.inner settings"),
    ({"inner": {"widht": 3}}, r"outer.inner.widht=3: expected a known key of outer.inner: "
                              r"\['names', 'width'\]"),
    ({"flag": True}, "outer.count=0: expected a count > 0 when flag is true"),
])
def test_a_bad_value_fails_in_one_line_naming_key_value_and_what_is_allowed(values, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse(Outer, values)
    assert "\n" not in str(error.value)


def test_values_are_converted_and_round_trip_through_plain_dicts():
    config = parse(Outer, {"rate": 0.25, "count": 3, "limit": 7, "sizes": [3, 4],
                           "weights": {"b": 2, "a": 0.5}, "inner": {"names": ["b", "a"]}})
    assert config.sizes == (3, 4)
    assert config.weights == (("a", 0.5), ("b", 2.0))  # sorted pairs, floats
    assert isinstance(config.inner, Inner) and config.inner.names == ("b", "a")
    plain = to_dict(config)
    assert plain["weights"] == {"a": 0.5, "b": 2.0} and plain["sizes"] == [3, 4]
    assert plain["inner"] == {"width": 2, "names": ["b", "a"]}
    assert parse(Outer, plain) == config
    assert parse(Outer, None) == Outer()


def test_direct_construction_and_replace_are_checked_too():
    with pytest.raises(ConfigError, match="outer.count=-1"):
        Outer(count=-1)
    with pytest.raises(ConfigError, match="outer.inner.width=0"):
        Outer().inner.replace(width=0)
    assert Outer().replace(count=4).count == 4
