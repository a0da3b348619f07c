"""TopKEvaluator's executor: evaluate (evaluation.py), check the ANN export
(ann_check.py), decide the blessing (blessing.py), write metrics.json, the
HTML report (report.py) and the ModelBlessing."""

from __future__ import annotations

import json
import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_artifact_utils
from tfx.utils import io_utils, path_utils

from clicklog.config import parse
from components.artifacts import optional_single
from components.topk_evaluator import blessing as blessing_lib
from components.topk_evaluator import evaluation
from components.topk_evaluator.config import MODEL, EvaluationConfig

METRICS_FILE = "metrics.json"
REPORT_FILE = "evaluation.html"
BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"


def _optional_single(input_dict: dict, key: str) -> types.Artifact | None:
    return optional_single(input_dict, key, "TopKEvaluator")


def run_ann_check(scann: types.Artifact | None, brute_force: types.Artifact | None,
                  eval_files: str, config: EvaluationConfig,
                  exclude_history: int) -> dict | None:
    """ANN recall and latency of the ScaNN export on a sample of eval requests."""
    if scann is None or brute_force is None:
        return None
    from components.topk_evaluator.ann_check import ann_check, serving_input_specs

    brute_force_dir = path_utils.serving_model_path(brute_force.uri)
    extra_specs = [spec for spec in serving_input_specs(brute_force_dir)
                   if spec.name not in ("user_id", "history")]
    users, histories, extra = evaluation.ann_requests(
        eval_files, config.ann_queries, max(exclude_history, 1), extra_specs)
    result = ann_check(path_utils.serving_model_path(scann.uri), brute_force_dir, users,
                       histories, latency_calls=config.ann_latency_calls, extra=extra)
    result.update(scann_model_uri=scann.uri, brute_force_model_uri=brute_force.uri)
    return result


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        from components.topk_evaluator import report as report_lib

        config = parse(EvaluationConfig, json.loads(exec_properties["config"]))
        thresholds = {key: float(exec_properties[key]) for key in ("min_lift", "min_recall")
                      if exec_properties.get(key) is not None}
        if thresholds:  # per-run parameters of the Kubeflow spec
            config = config.replace(**thresholds)
        model = artifact_utils.get_single_instance(input_dict["model"])
        baseline = _optional_single(input_dict, "baseline_model")
        eval_files = os.path.join(
            standard_artifact_utils.get_split_uri(input_dict["examples"], "eval"), "*")
        channels = _optional_single(input_dict, "channels")
        ranker = _optional_single(input_dict, "ranker")
        result = evaluation.evaluate(
            path_utils.serving_model_path(model.uri), eval_files, config,
            baseline_towers_dir=path_utils.serving_model_path(baseline.uri) if baseline else None,
            channels_dir=channels.uri if channels else None,
            ranker_dir=ranker.uri if ranker else None)
        ann = run_ann_check(_optional_single(input_dict, "scann_model"),
                            _optional_single(input_dict, "brute_force_model"), eval_files, config,
                            result["exclude_history"])
        same = baseline is not None and baseline.id == model.id  # a cached rerun
        blessed, checks = blessing_lib.decide_blessing(result, config, ann,
                                                       model.id if same else None)
        reasons = [check["reason"] for check in checks]
        result.update(blessed=blessed, reasons=reasons, checks=checks, ann=ann,
                      config=config.to_dict(), model_uri=model.uri,
                      baseline_model_uri=baseline.uri if baseline else None)
        report = artifact_utils.get_single_instance(output_dict["evaluation"])
        io_utils.write_string_file(os.path.join(report.uri, METRICS_FILE),
                                   json.dumps(result, indent=2, sort_keys=True))
        io_utils.write_string_file(os.path.join(report.uri, REPORT_FILE),
                                   report_lib.render_html(result))
        output = artifact_utils.get_single_instance(output_dict["blessing"])
        io_utils.write_string_file(
            os.path.join(output.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "")
        output.set_int_custom_property("blessed", 1 if blessed else 0)
        output.set_string_custom_property("current_model", model.uri)
        output.set_int_custom_property("current_model_id", model.id)
        if baseline is not None:
            output.set_string_custom_property("baseline_model", baseline.uri)
            output.set_int_custom_property("baseline_model_id", baseline.id)
        output.set_string_custom_property("reasons", json.dumps(reasons))
        key = f"recall@{config.blessing_k}"
        output.set_float_custom_property(key.replace("@", "_at_"),
                                         result["metrics"][MODEL][key])
        if ann is not None:
            ann_key = next(k for k in ann if k.startswith("recall@"))
            output.set_float_custom_property("ann_" + ann_key.replace("@", "_at_"), ann[ann_key])
