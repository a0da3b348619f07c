"""ClickExampleGen: click logs -> train/eval (/test) click examples + quarantine.

A Beam component. Inputs: a click-log file, glob or directory (CSV, JSONL,
MovieTweetings .dat, Parquet, TFRecord) and the `ingestion` settings
(config.py). Outputs: `Examples` (one gzipped TFRecord split per directory)
and `retrieval.QuarantinedClicks` (rejected rows with their reason, and
``ingestion.json``).
"""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from clicklog.config import parse
from components.artifacts import QuarantinedClicks
from components.click_example_gen.config import IngestionConfig
from components.click_example_gen.executor import Executor


class ClickExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "config": ExecutionParameter(type=str),
        # Where the ingestion report (and, on failure, the quarantine) is
        # also written; "" = only in the artifacts.
        "report_dir": ExecutionParameter(type=str, optional=True),
        # The input files' versions (inputs.input_fingerprint): part of the
        # cache key, so that cached runs read changed files again.
        "input_fingerprint": ExecutionParameter(type=str, optional=True),
    }
    INPUTS: dict = {}
    OUTPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "quarantine": ChannelParameter(type=QuarantinedClicks),
    }


class ClickExampleGen(base_beam_component.BaseBeamComponent):
    """Click logs -> click examples (one per accepted click) and the quarantine."""

    SPEC_CLASS = ClickExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, input_base: str, config: IngestionConfig | dict | None = None,
                 report_dir: str = "", input_fingerprint: str = ""):
        """Args:
          input_base: a click-log file, glob or directory.
          config: the `ingestion` settings (checked here, at pipeline build time).
          report_dir: a directory that also gets the ingestion report, and on
            a failed run the report with the error and the quarantined rows.
          input_fingerprint: the input files' versions (cache key only).
        """
        config = parse(IngestionConfig, config)
        super().__init__(spec=ClickExampleGenSpec(
            input_base=input_base, config=json.dumps(config.to_dict(), sort_keys=True),
            report_dir=report_dir, input_fingerprint=input_fingerprint,
            examples=types.Channel(type=standard_artifacts.Examples),
            quarantine=types.Channel(type=QuarantinedClicks)))
