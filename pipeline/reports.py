"""After a local run: find the run's artifacts in MLMD and write the reports."""

from __future__ import annotations

import json
import os
import shutil

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.artifacts import QuarantinedClicks
from components.click_example_gen import REPORT_FILE
from components.topk_evaluator import METRICS_FILE


def _store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def latest_artifact(store: mlmd.MetadataStore, type_name: str):
    artifacts = store.get_artifacts_by_type(type_name)
    return max(artifacts, key=lambda a: a.id) if artifacts else None


def collect(metadata_path: str, reports_dir: str) -> dict:
    """Copies the latest ingestion and metrics reports into `reports_dir`.

    Returns:
      {"ingestion": path, "metrics": path, "blessed": bool, "pushed": [dirs]}.
    """
    store = _store(metadata_path)
    os.makedirs(reports_dir, exist_ok=True)
    summary: dict = {"pushed": []}
    for type_name, file_name, key in ((QuarantinedClicks.TYPE_NAME, REPORT_FILE, "ingestion"),
                                      ("ModelEvaluation", METRICS_FILE, "metrics")):
        artifact = latest_artifact(store, type_name)
        if artifact is None:
            continue
        source = os.path.join(artifact.uri, file_name)
        if os.path.exists(source):
            target = os.path.join(reports_dir, file_name)
            shutil.copy(source, target)
            summary[key] = target
    blessing = latest_artifact(store, "ModelBlessing")
    if blessing is not None:
        summary["blessed"] = bool(blessing.custom_properties["blessed"].int_value)
    latest_execution_pushes = sorted(store.get_artifacts_by_type("PushedModel"),
                                     key=lambda a: a.id)[-2:]
    for pushed in latest_execution_pushes:
        props = pushed.custom_properties
        if props["pushed"].int_value == 1:
            summary["pushed"].append(props["pushed_destination"].string_value)
    return summary


def print_summary(summary: dict) -> None:
    if "ingestion" in summary:
        with open(summary["ingestion"]) as f:
            totals = json.load(f)["totals"]
        print(f"ingestion: {totals['rows_read']} rows read, {totals['accepted']} accepted "
              f"(train {totals['accepted_by_split']['train']}, eval "
              f"{totals['accepted_by_split']['eval']}), quarantined {totals['quarantined']}")
        print(f"  report: {summary['ingestion']}")
    if "metrics" in summary:
        with open(summary["metrics"]) as f:
            metrics = json.load(f)
        print(f"evaluation: {metrics['num_examples']} eval clicks, "
              f"{metrics['num_candidates']} candidates (full catalogue, seen items excluded)")
        for name, values in metrics["metrics"].items():
            by_k = sorted(values.items(), key=lambda kv: int(kv[0].split("@")[1]))
            print(f"  {name:>18}: " + ", ".join(f"{k} {v:.4f}" for k, v in by_k))
        print(f"blessed: {metrics['blessed']} ({'; '.join(metrics['reasons'])})")
        print(f"  report: {summary['metrics']}")
    for destination in summary["pushed"]:
        print(f"pushed: {destination}")
    if not summary["pushed"]:
        print("pushed: nothing (model not blessed)")
