"""`retrieval-pipeline`: run the pipeline locally, or compile it for Kubeflow."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from pipeline.image import DEFAULT_IMAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retrieval-pipeline",
        description="Train, evaluate and push a two-tower retrieval model from click logs.")
    parser.add_argument("--data", required=True,
                        help="click-log file, glob or directory (CSV, JSONL, MovieTweetings .dat, "
                             "Parquet, TFRecord)")
    parser.add_argument("--output", required=True,
                        help="output directory (local run) or pipeline spec JSON (--kubeflow)")
    parser.add_argument("--config", help="YAML config file (sections: see docs/configuration.md)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value (e.g. model.training.epochs=3); "
                             "repeatable")
    parser.add_argument("--since", metavar="UNIX_SECONDS|base",
                        help="train only on clicks from this time on (earlier clicks still give "
                             "histories and statistics); `base`: the clicks after the last "
                             "blessed model's training window, warm-starting from it (a daily "
                             "run)")
    parser.add_argument("--verbose", action="store_true",
                        help="print the traceback of an error (by default one or two lines)")
    parser.add_argument("--allow-anomaly", action="append", default=[],
                        metavar="FEATURE:KIND",
                        help="let this anomaly of the click examples through the validation "
                             "gate (appended to validation.allow_anomalies); repeatable")
    parser.add_argument("--kubeflow", action="store_true",
                        help="compile a Kubeflow Pipelines v2 spec to --output instead of running")
    parser.add_argument("--pipeline_root", default="gs://YOUR_BUCKET/retrieval",
                        help="artifact root for --kubeflow")
    parser.add_argument("--image", default=DEFAULT_IMAGE,
                        help="container image for --kubeflow (kubeflow/Dockerfile; `make image "
                             "REGISTRY=...` builds it as REGISTRY/%(default)s)")
    parser.add_argument("--image_root", default=None,
                        help="where the step image holds this repository for --kubeflow "
                             "(default /pipeline, kubeflow/Dockerfile); `.` for a local run "
                             "of the spec with `python -m kubeflow.local_launcher`")
    parser.add_argument("--serving_base", default=None,
                        help="push destination parent for --kubeflow "
                             "(default PIPELINE_ROOT/serving)")
    return parser


def since_overrides(since: str | None) -> list[str]:
    """`--since` as config overrides: a unix time, or `base` (warm start from
    the last blessed model and train on the clicks after its window)."""
    if since is None:
        return []
    if since == "base":
        return ["model.training.warm_start=true", "model.training.since_base_model=true"]
    try:
        return [f"model.training.since={int(since)}"]
    except ValueError:
        raise ValueError(f"--since {since!r}: expected unix seconds or 'base'") from None


def quiet_libraries() -> None:
    """Silences what TensorFlow's C++ runtime and Google client libraries print
    on import (CUDA probing, CPU features, Python-version notices: about 40
    lines before the first line of ours), in this process and its workers;
    `--verbose` keeps them. Must run before TensorFlow is imported."""
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    warnings.filterwarnings("ignore", category=FutureWarning)


def _error(error: BaseException, verbose: bool) -> int:
    """Prints `error` as one line per problem (the traceback with --verbose);
    -> exit code 2 for unusable input or configuration, 1 otherwise."""
    if verbose:
        traceback.print_exception(type(error), error, error.__traceback__)
    if isinstance(error, ValueError):  # InputError, ConfigError: the message says it all
        first, *rest = str(error).strip().splitlines() or [repr(error)]
        print(f"retrieval-pipeline: {first}", file=sys.stderr)
        for line in rest:  # one line per problem (e.g. per anomaly), indented
            print(line, file=sys.stderr)
        return 2
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    print(f"retrieval-pipeline: {type(error).__name__}: {lines[-1][:500] if lines else ''}",
          file=sys.stderr)
    if not verbose:
        print("retrieval-pipeline: the run failed; --verbose prints the traceback",
              file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_libraries()
    try:
        return _main(args)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # every failure ends as one or two lines and an exit code
        return _error(error, args.verbose)


def _main(args: argparse.Namespace) -> int:
    from pipeline.config import load_config

    config = load_config(args.config, args.set + since_overrides(args.since))
    if args.allow_anomaly:
        config = config.replace(validation=config.validation.replace(
            allow_anomalies=config.validation.allow_anomalies + tuple(args.allow_anomaly)))
        print(f"retrieval-pipeline: allowing anomalies {args.allow_anomaly} "
              "(--allow-anomaly)", file=sys.stderr)
    if args.kubeflow:
        from pipeline import kubeflow_runner

        path = kubeflow_runner.compile_pipeline(
            output_file=args.output, data_path=args.data, pipeline_root=args.pipeline_root,
            image=args.image, config=config,
            serving_base=args.serving_base or args.pipeline_root.rstrip("/") + "/serving",
            image_root=(kubeflow_runner.IMAGE_ROOT if args.image_root is None else
                        os.path.abspath(args.image_root)))
        print(f"retrieval-pipeline: wrote Kubeflow pipeline spec {path}")
        return 0

    from components.click_example_gen.executor import REPORT_FILE, write_report_dir
    from pipeline import local_runner, preflight, reports, serving_config
    from pipeline.pipeline import serving_dirs

    where = local_runner.paths(args.output)
    problems = preflight.problems(args.data, args.output, config)
    if problems:
        if not any(p.startswith("--output") for p in problems):  # a run stopped before it began
            write_report_dir(where["reports"], {"status": "failed", "error": problems[0],
                                                "problems": problems}, None)
        for problem in problems:
            print(f"retrieval-pipeline: {problem}", file=sys.stderr)
        return 2
    try:
        local_runner.run(args.data, args.output, config)
    except Exception as error:
        code = _error(error, args.verbose)
        report = os.path.join(where["reports"], REPORT_FILE)
        if os.path.exists(report):
            print(f"retrieval-pipeline: ingestion report {report}", file=sys.stderr)
        return code
    summary = reports.collect(where["metadata"], where["reports"])
    reports.print_summary(summary)
    if summary["pushed"]:
        names = [os.path.basename(d) for d in
                 serving_dirs(where["serving"], config.pipeline.model_name).values()]
        configs = serving_config.write_configs(where["serving"], names)
        print(f"TF Serving model config: {configs['local']} (container paths: "
              f"{configs['docker']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
