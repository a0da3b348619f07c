"""Shared helpers of the component tests."""

import json

from tfx.types import standard_artifacts

from components import click_example_gen
from components.artifacts import QuarantinedClicks


def run_click_example_gen(tmp_path, data_path, config=None):
    """ClickExampleGen's executor on temp artifacts; returns (examples, quarantine)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    quarantine = QuarantinedClicks()
    quarantine.uri = str(tmp_path / "quarantine")
    click_example_gen.Executor().Do(
        {}, {"examples": [examples], "quarantine": [quarantine]},
        {"input_base": str(data_path), "config": json.dumps(config or {})})
    return examples, quarantine
