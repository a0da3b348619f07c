"""After a local run: find the run's artifacts in MLMD and write the reports."""

from __future__ import annotations

import json
import os
import shutil

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.artifacts import QuarantinedClicks
from components.click_example_gen import report as ingestion_report
from components.click_example_gen.executor import REPORT_FILE
from components.topk_evaluator.executor import METRICS_FILE
from components.topk_evaluator.executor import REPORT_FILE as EVALUATION_REPORT_FILE


def _store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def latest_artifact(store: mlmd.MetadataStore, type_name: str):
    artifacts = store.get_artifacts_by_type(type_name)
    return max(artifacts, key=lambda a: a.id) if artifacts else None


def node_output(store: mlmd.MetadataStore, node: str, type_name: str):
    """The artifact of `type_name` that `node`'s latest execution wrote (a
    pipeline with the final fit has two VocabStats and two Models), or None."""
    contexts = [c for c in store.get_contexts_by_type("node") if c.name.endswith("." + node)]
    executions = [e for c in contexts for e in store.get_executions_by_context(c.id)]
    if not executions:
        return None
    latest = max(executions, key=lambda e: e.id)
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([latest.id])
           if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = store.get_artifacts_by_id(ids)
    types = store.get_artifact_types_by_id([a.type_id for a in artifacts])
    for artifact, artifact_type in zip(artifacts, types, strict=True):
        if artifact_type.name == type_name:
            return artifact
    return None


def collect(metadata_path: str, reports_dir: str) -> dict:
    """Copies the latest ingestion and evaluation reports into `reports_dir`.

    Returns:
      {"ingestion": path, "metrics": path, "evaluation_report": path,
      "blessed": bool, "pushed": [dirs]}.
    """
    store = _store(metadata_path)
    os.makedirs(reports_dir, exist_ok=True)
    summary: dict = {"pushed": []}
    for type_name, file_name, key in ((QuarantinedClicks.TYPE_NAME, REPORT_FILE, "ingestion"),
                                      ("ModelEvaluation", METRICS_FILE, "metrics"),
                                      ("ModelEvaluation", EVALUATION_REPORT_FILE,
                                       "evaluation_report")):
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
            ingestion = json.load(f)
        print(f"ingestion: {ingestion_report.summary_line(ingestion)}")
        for line in ingestion_report.file_lines(ingestion):
            print(f"  {line}")
        print(f"  report: {summary['ingestion']}")
    if "metrics" in summary:
        with open(summary["metrics"]) as f:
            metrics = json.load(f)
        seen = "seen items excluded" if metrics["exclude_history"] else "seen items kept"
        print(f"evaluation: {metrics['num_examples']} eval clicks, "
              f"{metrics['num_candidates']} candidates (full catalogue, {seen}), "
              f"{metrics['protocol']} history; model: "
              f"{metrics.get('model_is', 'the two-tower model')}")
        ks = sorted(metrics["config"]["ks"])
        shown = [f"recall@{k}" for k in ks] + [f"ndcg@{ks[-1]}", "mrr"]
        # metrics.json has sorted keys; print the model first.
        for name in sorted(metrics["metrics"], key=lambda scorer: scorer != "model"):
            values = metrics["metrics"][name]
            print(f"  {name:>18}: " + ", ".join(f"{k} {values[k]:.4f}" for k in shown))
        key = f"recall@{metrics['config']['blessing_k']}"
        for protocol, values in metrics.get("protocols", {}).items():
            model, recent = (values["metrics"][name][key] for name in
                             ("model", "recent_popularity"))
            ratio = f"{model / recent:.3f}x" if recent else "-"
            print(f"  {protocol:>6} history: model {key} {model:.4f}, recent popularity "
                  f"{recent:.4f} ({ratio})")
            channels = metrics.get("channels", {}).get("protocols", {}).get(protocol)
            if channels:
                alone = {name: channels["metrics"][name][key]
                         for name in metrics["channels"]["channels"]}
                print(f"  {'':>6} channels alone: " + ", ".join(
                    f"{name} {value:.4f}" for name, value in alone.items()))
        related = metrics.get("channels", {}).get("related_items")
        if related:
            key = next(k for k in related if k.startswith("hit@"))
            source = related.get("source", {}).get("source", "item_cf")
            print(f"  related_items ({source}): next-click {key} {related[key]:.4f}, "
                  f"co-occurrence {related['cooccurrence_' + key]:.4f} "
                  f"({related['clicks']} clicks)")
        if metrics.get("ann"):
            ann = metrics["ann"]
            recall = next(k for k in ann if k.startswith("recall@"))
            print(f"  ANN (ScaNN vs exact): {recall} {ann[recall]:.4f}, latency p50 "
                  f"{ann['latency_ms_p50']:.2f} ms, p99 {ann['latency_ms_p99']:.2f} ms")
        print(f"blessed: {metrics['blessed']} ({'; '.join(metrics['reasons'])})")
        print(f"  report: {summary['metrics']}")
    if "evaluation_report" in summary:
        print(f"  report: {summary['evaluation_report']}")
    for destination in summary["pushed"]:
        print(f"pushed: {destination}")
    if not summary["pushed"]:
        print("pushed: nothing (model not blessed)")
