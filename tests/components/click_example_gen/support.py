"""Shared helper of the ClickExampleGen tests: its executor on temp artifacts."""

import json

from tfx.types import standard_artifacts

from components.artifacts import QuarantinedClicks
from components.click_example_gen.executor import Executor


def run_click_example_gen(tmp_path, data_path, config=None, beam_pipeline_args=None):
    """ClickExampleGen's executor on temp artifacts (Beam's default runner
    unless `beam_pipeline_args`); returns (examples, quarantine)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    quarantine = QuarantinedClicks()
    quarantine.uri = str(tmp_path / "quarantine")
    context = Executor.Context(beam_pipeline_args=beam_pipeline_args)
    Executor(context).Do(
        {}, {"examples": [examples], "quarantine": [quarantine]},
        {"input_base": str(data_path), "config": json.dumps(config or {})})
    return examples, quarantine
