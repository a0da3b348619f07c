"""Runs a compiled KFP v2 pipeline spec on this machine, playing the KFP launcher.

    python -m kubeflow.local_launcher pipeline.json [--pipeline_root DIR]
        [--param NAME=VALUE ...] [--run_id ID]

What it does is what a KFP v2 backend does with the PipelineJob JSON that
``retrieval-pipeline --kubeflow`` writes, with local folders for the pipeline
root and this Python for the step image's:

* pipeline parameters: the root's input definitions, valued from the job's
  ``runtimeConfig`` (the compiled defaults) and ``--param`` (a name the spec
  does not declare, or a parameter left without a value, is an error);
* tasks in dependency order (``dependentTasks`` and the producers of their
  inputs), every ready task at once up to ``--parallelism``, as KFP starts
  them;
* a container task: its ExecutorInput built from the spec (parameters:
  constants, pipeline parameters or upstream output parameters; input
  artifacts: the producers' output artifacts with their URIs, types and
  metadata; output artifacts: ``<pipeline_root>/<run_id>/<task>/<output>``,
  and the ``executor_output.json`` output file), the placeholders of its
  command and args substituted as KFP does (``{{$}}`` is the ExecutorInput
  JSON; ``{{$.inputs.parameters['x']}}``, ``{{$.inputs.artifacts['x'].uri}}``,
  ``{{$.outputs.artifacts['x'].uri}}``, ``{{$.outputs.parameters['x'].output_file}}``
  and ``{{$.outputs.output_file}}``), ``python`` (the image's interpreter) run
  as this interpreter with the project checkout as working directory (the
  image's WORKDIR), and the ExecutorOutput it writes read back: the output
  artifacts' URIs and metadata (e.g. a blessing's ``blessed``) are what
  downstream tasks get;
* an importer task: one artifact at the spec's URI (constant or parameter);
* a resolver task: its artifact queries (``schema_title="..." AND state=LIVE
  AND metadata.K.number_value=N AND name="..."``, placeholders on the input
  artifact's metadata substituted) evaluated against the artifacts earlier
  tasks and earlier runs under the same pipeline root produced (recorded in
  ``<pipeline_root>/local_launcher/artifacts.jsonl``); the latest match, or
  nothing, as a KFP metadata query returns.

A step that fails stops the run with an error naming the task, its command
and the tail of its stderr (the full logs: ``<task>/stdout.txt``,
``stderr.txt``). Not evaluated: trigger conditions (a task with one is an
error), caching, retries, and anything a cluster adds (images, resources,
service accounts). The steps' ExecutorInput carries each parameter both as
``parameters`` (schema 2.0, which TFX's entrypoint reads when the spec does not
pass an inputs spec) and ``parameterValues``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent import futures
from dataclasses import dataclass, field

from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

# The project checkout: the image's WORKDIR (kubeflow/Dockerfile) on this machine.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORE_DIR = "local_launcher"
OUTPUT_FILE = "executor_output.json"
STDERR_TAIL = 3000


class LauncherError(RuntimeError):
    """A task could not be run, or its step failed."""


@dataclass
class TaskRun:
    name: str
    kind: str  # container, importer, resolver
    seconds: float = 0.0
    outputs: dict[str, list[pb.RuntimeArtifact]] = field(default_factory=dict)
    output_parameters: dict[str, struct_pb2.Value] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)


# --- the spec -------------------------------------------------------------------------------

def load_job(path: str) -> tuple[dict, pb.PipelineSpec, pb.PipelineDeploymentConfig]:
    """(the job JSON, its PipelineSpec, its deployment config)."""
    with open(path) as f:
        job = json.load(f)
    spec = json_format.ParseDict(job["pipelineSpec"], pb.PipelineSpec())
    deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                       pb.PipelineDeploymentConfig())
    return job, spec, deployment


def _declared_type(spec: pb.ComponentInputsSpec.ParameterSpec) -> str:
    """'int', 'float' or 'str' from a schema 2.0 `type` or a 2.1 `parameterType`."""
    if spec.parameter_type:
        return {pb.ParameterType.NUMBER_INTEGER: "int", pb.ParameterType.NUMBER_DOUBLE: "float",
                pb.ParameterType.BOOLEAN: "bool"}.get(spec.parameter_type, "str")
    return {pb.PrimitiveType.INT: "int", pb.PrimitiveType.DOUBLE: "float"}.get(spec.type, "str")


def _coerce(name: str, kind: str, value):
    try:
        if kind == "int":
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true")
        return str(value)
    except (TypeError, ValueError):
        raise LauncherError(f"pipeline parameter {name}: {value!r} is not {kind}") from None


def pipeline_parameters(job: dict, spec: pb.PipelineSpec,
                        overrides: dict[str, str]) -> dict[str, object]:
    """The run's pipeline parameters: the spec's declared names, valued from the
    job's runtimeConfig, then `overrides` (strings, coerced to the declared type)."""
    declared = {name: _declared_type(p)
                for name, p in spec.root.input_definitions.parameters.items()}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise LauncherError(f"--param {', '.join(unknown)}: not a pipeline parameter of the "
                            f"spec (declared: {', '.join(sorted(declared)) or 'none'})")
    runtime = job.get("runtimeConfig", {})
    values: dict[str, object] = {}
    for name, value in runtime.get("parameterValues", {}).items():
        values[name] = value
    for name, value in runtime.get("parameters", {}).items():  # schema 2.0: {"intValue": ..}
        values[name] = next(iter(value.values()))
    values.update(overrides)
    missing = sorted(set(declared) - set(values))
    if missing:
        raise LauncherError(f"pipeline parameters without a value: {', '.join(missing)} "
                            "(set them with --param NAME=VALUE)")
    return {name: _coerce(name, declared[name], values[name]) for name in declared}


def task_dependencies(spec: pb.PipelineSpec) -> dict[str, set[str]]:
    """Each root DAG task -> the tasks it waits for (``dependentTasks`` and the
    producers of its input artifacts and parameters)."""
    tasks = spec.root.dag.tasks
    upstream = {}
    for name, task in tasks.items():
        deps = set(task.dependent_tasks)
        deps |= {a.task_output_artifact.producer_task for a in task.inputs.artifacts.values()
                 if a.HasField("task_output_artifact")}
        deps |= {p.task_output_parameter.producer_task for p in task.inputs.parameters.values()
                 if p.HasField("task_output_parameter")}
        unknown = deps - set(tasks)
        if unknown:
            raise LauncherError(f"task {name} depends on unknown tasks {sorted(unknown)}")
        upstream[name] = deps
    return upstream


def task_order(spec: pb.PipelineSpec) -> list[str]:
    """The root DAG's tasks, each after every task it depends on (ties by name)."""
    tasks = spec.root.dag.tasks
    upstream = task_dependencies(spec)
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n, deps in upstream.items() if n not in order and deps <= set(order))
        if not ready:
            raise LauncherError("the task graph has a cycle among "
                                f"{sorted(set(tasks) - set(order))}")
        order.extend(ready)
    return order


# --- values ---------------------------------------------------------------------------------

def _struct_value(value) -> struct_pb2.Value:
    out = struct_pb2.Value()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, (int, float)):
        out.number_value = value
    else:
        out.string_value = str(value)
    return out


def _legacy_value(value) -> pb.Value:
    if isinstance(value, bool):
        return pb.Value(int_value=int(value))
    if isinstance(value, int):
        return pb.Value(int_value=value)
    if isinstance(value, float):
        return pb.Value(double_value=value)
    return pb.Value(string_value=str(value))


def _python_value(value):
    """A struct or legacy Value -> a Python value."""
    kind = value.WhichOneof("kind" if isinstance(value, struct_pb2.Value) else "value")
    if kind is None:
        return None
    result = getattr(value, kind)
    if kind in ("struct_value", "list_value"):
        return json_format.MessageToDict(result)
    return result


def _parameter_value(task_name: str, key: str, spec: pb.TaskInputsSpec.InputParameterSpec,
                     parameters: dict, runs: dict[str, TaskRun]):
    if spec.HasField("runtime_value"):
        runtime = spec.runtime_value
        if runtime.HasField("constant_value"):
            return _python_value(runtime.constant_value)
        if runtime.HasField("constant"):
            return _python_value(runtime.constant)
        if runtime.runtime_parameter:
            return parameters[runtime.runtime_parameter]
    if spec.component_input_parameter:
        return parameters[spec.component_input_parameter]
    if spec.HasField("task_output_parameter"):
        producer = spec.task_output_parameter
        outputs = runs[producer.producer_task].output_parameters
        if producer.output_parameter_key not in outputs:
            raise LauncherError(f"task {task_name} input {key}: task {producer.producer_task} "
                                f"wrote no output parameter {producer.output_parameter_key}")
        return _python_value(outputs[producer.output_parameter_key])
    raise LauncherError(f"task {task_name} input parameter {key}: unsupported source "
                        f"{json_format.MessageToJson(spec)}")


# --- the artifact store (for resolvers) -----------------------------------------------------

class ArtifactStore:
    """Artifacts the runs under one pipeline root produced, oldest first."""

    def __init__(self, pipeline_root: str):
        self.path = os.path.join(pipeline_root, STORE_DIR, "artifacts.jsonl")
        self.records: list[dict] = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.records = [json.loads(line) for line in f if line.strip()]

    def add(self, artifact: pb.RuntimeArtifact) -> None:
        record = {"name": artifact.name, "uri": artifact.uri, "state": "LIVE",
                  "schema_title": _schema_title(artifact.type),
                  "metadata": json_format.MessageToDict(artifact.metadata),
                  "artifact": json_format.MessageToDict(artifact)}
        self.records.append(record)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def query(self, task_name: str, expression: str) -> list[pb.RuntimeArtifact]:
        clauses = [_clause(task_name, c) for c in re.split(r"\s+AND\s+", expression.strip())]
        for record in reversed(self.records):  # the latest match
            if all(_matches(record, key, value) for key, value in clauses):
                return [json_format.ParseDict(record["artifact"], pb.RuntimeArtifact())]
        return []


def _schema_title(type_schema: pb.ArtifactTypeSchema) -> str:
    if type_schema.schema_title:
        return type_schema.schema_title
    match = re.search(r"^title:\s*(\S+)", type_schema.instance_schema, re.MULTILINE)
    return match.group(1) if match else ""


_CLAUSE = re.compile(r'^\s*([A-Za-z_][\w.]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$')


def _clause(task_name: str, text: str) -> tuple[str, object]:
    match = _CLAUSE.match(text)
    if not match:
        raise LauncherError(f"resolver task {task_name}: cannot evaluate filter clause {text!r} "
                            "(the local launcher knows field=\"string\", field=number and "
                            "state=LIVE joined by AND)")
    key, quoted, bare = match.groups()
    if quoted is not None:
        return key, quoted
    try:
        return key, float(bare)
    except ValueError:
        return key, bare


def _matches(record: dict, key: str, value) -> bool:
    if key in ("schema_title", "name", "uri", "state"):
        return record.get(key) == value
    parts = key.split(".")
    if parts[0] == "metadata" and len(parts) == 3:
        actual = record["metadata"].get(parts[1])
        if parts[2] == "number_value":
            return isinstance(actual, (int, float)) and float(actual) == value
        return str(actual) == str(value)
    raise LauncherError(f"resolver filter field {key!r} is not supported by the local launcher")


# --- running tasks --------------------------------------------------------------------------

_INPUT_METADATA = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")
_PLACEHOLDER = re.compile(r"\{\{\$(?P<path>[^}]*)\}\}")
_PATHS = {
    "inputs.parameters": re.compile(r"^\.inputs\.parameters\['([^']+)'\]$"),
    "inputs.artifacts.uri": re.compile(r"^\.inputs\.artifacts\['([^']+)'\]\.uri$"),
    "outputs.artifacts.uri": re.compile(r"^\.outputs\.artifacts\['([^']+)'\]\.uri$"),
    "outputs.parameters.output_file": re.compile(
        r"^\.outputs\.parameters\['([^']+)'\]\.output_file$"),
}


def substitute(task_name: str, text: str, executor_input: pb.ExecutorInput,
               parameters: dict[str, object]) -> str:
    """`text` with KFP's placeholders replaced from `executor_input`."""
    def replace(match: re.Match) -> str:
        path = match.group("path")
        if path == "":
            return json_format.MessageToJson(executor_input, indent=None)
        if path == ".outputs.output_file":
            return executor_input.outputs.output_file
        for kind, pattern in _PATHS.items():
            found = pattern.match(path)
            if not found:
                continue
            key = found.group(1)
            try:
                if kind == "inputs.parameters":
                    value = parameters[key]
                    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)
                if kind == "inputs.artifacts.uri":
                    return executor_input.inputs.artifacts[key].artifacts[0].uri
                if kind == "outputs.artifacts.uri":
                    return executor_input.outputs.artifacts[key].artifacts[0].uri
                return executor_input.outputs.parameters[key].output_file
            except (KeyError, IndexError):
                raise LauncherError(f"task {task_name}: placeholder {match.group(0)} names no "
                                    "value of the task") from None
        raise LauncherError(f"task {task_name}: unsupported placeholder {match.group(0)}")

    return _PLACEHOLDER.sub(replace, text)


def _short(command: list[str], limit: int = 300) -> str:
    return " ".join(arg if len(arg) <= limit else arg[:limit] + "...(truncated)"
                    for arg in command)


class Launcher:
    def __init__(self, job_path: str, pipeline_root: str | None = None,
                 parameters: dict[str, str] | None = None, run_id: str | None = None,
                 echo=None):
        self.job, self.spec, self.deployment = load_job(job_path)
        root = pipeline_root or self.job.get("runtimeConfig", {}).get("gcsOutputDirectory")
        if not root:
            raise LauncherError("no pipeline root: pass --pipeline_root")
        self.pipeline_root = os.path.abspath(root) if "://" not in root else root
        self.parameters = pipeline_parameters(self.job, self.spec, parameters or {})
        self.run_id = run_id or time.strftime("run-%Y%m%d-%H%M%S")
        self.run_root = os.path.join(self.pipeline_root, self.run_id)
        self.store = ArtifactStore(self.pipeline_root)
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.runs: dict[str, TaskRun] = {}

    def run(self, parallelism: int = 1) -> dict[str, TaskRun]:
        """Runs every task once its upstream tasks are done, up to
        ``parallelism`` at a time (KFP starts every ready task at once)."""
        if os.path.exists(self.run_root):
            raise LauncherError(f"{self.run_root} exists: a run id is used once")
        os.makedirs(self.run_root)
        task_order(self.spec)  # rejects unknown dependencies and cycles up front
        upstream = task_dependencies(self.spec)
        pending = set(upstream)
        running: dict[futures.Future, tuple[str, float]] = {}
        failure: BaseException | None = None
        with futures.ThreadPoolExecutor(max(1, parallelism)) as pool:
            while running or (pending and failure is None):
                if failure is None:
                    ready = sorted(n for n in pending if upstream[n] <= set(self.runs))
                    for name in ready[:max(1, parallelism) - len(running)]:
                        pending.discard(name)
                        running[pool.submit(self._run_task, name)] = (name, time.monotonic())
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    name, started = running.pop(future)
                    try:
                        run = future.result()
                    except BaseException as error:  # the others finish, then it is raised
                        failure = failure or error
                        continue
                    run.seconds = time.monotonic() - started
                    # Only this thread writes runs and the store; tasks read upstream runs.
                    self.runs[name] = run
                    for artifacts in run.outputs.values():
                        for artifact in artifacts:
                            self.store.add(artifact)
                    self.echo(f"local_launcher: {name} ({run.kind}) done in "
                              f"{run.seconds:.1f} s")
        if failure is not None:
            raise failure
        summary = {name: {"kind": r.kind, "seconds": round(r.seconds, 1),
                          "outputs": {k: [json_format.MessageToDict(a) for a in v]
                                      for k, v in r.outputs.items()}}
                   for name, r in self.runs.items()}
        with open(os.path.join(self.run_root, "run.json"), "w") as f:
            json.dump({"parameters": self.parameters, "tasks": summary}, f, indent=1,
                      sort_keys=True)
        return self.runs

    def _run_task(self, name: str) -> TaskRun:
        task = self.spec.root.dag.tasks[name]
        if task.trigger_policy.condition:
            raise LauncherError(f"task {name} has a trigger condition "
                                f"({task.trigger_policy.condition}), which the local launcher "
                                "does not evaluate")
        component = self.spec.components[task.component_ref.name]
        if component.WhichOneof("implementation") == "dag":
            raise LauncherError(f"task {name} is a sub-DAG, which the local launcher does not run")
        executor = self.deployment.executors[component.executor_label]
        kind = executor.WhichOneof("spec")
        inputs = self._input_artifacts(name, task, component)
        params = {key: _parameter_value(name, key, spec, self.parameters, self.runs)
                  for key, spec in task.inputs.parameters.items()}
        if kind == "container":
            return self._run_container(name, component, executor.container, inputs, params)
        if kind == "importer":
            return self._run_importer(name, component, executor.importer)
        if kind == "resolver":
            return self._run_resolver(name, executor.resolver, inputs)
        raise LauncherError(f"task {name}: executor kind {kind!r} is not supported")

    def _input_artifacts(self, name, task, component) -> dict[str, list[pb.RuntimeArtifact]]:
        result = {}
        for key, spec in task.inputs.artifacts.items():
            if not spec.HasField("task_output_artifact"):
                raise LauncherError(f"task {name} input artifact {key}: only task outputs are "
                                    "supported")
            producer = spec.task_output_artifact
            outputs = self.runs[producer.producer_task].outputs
            artifacts = [pb.RuntimeArtifact.FromString(a.SerializeToString())
                         for a in outputs.get(producer.output_artifact_key, [])]
            declared = component.input_definitions.artifacts[key].artifact_type
            for artifact in artifacts:
                if not artifact.HasField("type"):
                    artifact.type.CopyFrom(declared)
            result[key] = artifacts
        return result

    def _output_artifacts(self, name, component) -> dict[str, pb.RuntimeArtifact]:
        result = {}
        for key, spec in component.output_definitions.artifacts.items():
            artifact = pb.RuntimeArtifact(name=f"{self.run_id}/{name}/{key}",
                                          type=spec.artifact_type,
                                          uri=os.path.join(self.run_root, name, key))
            if spec.HasField("metadata"):
                artifact.metadata.CopyFrom(spec.metadata)
            result[key] = artifact
        return result

    def _run_container(self, name, component, container, inputs, params) -> TaskRun:
        task_dir = os.path.join(self.run_root, name)
        os.makedirs(task_dir)
        executor_input = pb.ExecutorInput()
        for key, value in params.items():
            executor_input.inputs.parameter_values[key].CopyFrom(_struct_value(value))
            executor_input.inputs.parameters[key].CopyFrom(_legacy_value(value))
        for key, artifacts in inputs.items():
            executor_input.inputs.artifacts[key].artifacts.extend(artifacts)
        outputs = self._output_artifacts(name, component)
        for key, artifact in outputs.items():
            executor_input.outputs.artifacts[key].artifacts.append(artifact)
        for key in component.output_definitions.parameters:
            executor_input.outputs.parameters[key].output_file = os.path.join(
                task_dir, "parameters", key)
        executor_input.outputs.output_file = os.path.join(task_dir, OUTPUT_FILE)
        command = [substitute(name, part, executor_input, params)
                   for part in list(container.command) + list(container.args)]
        if command and command[0] in ("python", "python3"):  # the image's interpreter
            command[0] = sys.executable
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT_ROOT, env.get("PYTHONPATH")]))
        stdout_path, stderr_path = (os.path.join(task_dir, "stdout.txt"),
                                    os.path.join(task_dir, "stderr.txt"))
        with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
            try:
                code = subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdout=out,
                                      stderr=err).returncode
            except OSError as error:
                raise LauncherError(f"task {name}: cannot run {_short(command)}: {error}") from None
        if code != 0:
            with open(stderr_path) as f:
                tail = f.read()[-STDERR_TAIL:]
            raise LauncherError(f"task {name} failed (exit code {code})\n"
                                f"command: {_short(command)}\n"
                                f"stderr ({stderr_path}), last lines:\n{tail}")
        run = TaskRun(name, "container", command=command)
        written = pb.ExecutorOutput()
        if os.path.exists(executor_input.outputs.output_file):
            with open(executor_input.outputs.output_file) as f:
                json_format.Parse(f.read(), written, ignore_unknown_fields=True)
        for key, artifact in outputs.items():
            if key in written.artifacts and written.artifacts[key].artifacts:
                reported = written.artifacts[key].artifacts[0]
                artifact.uri = reported.uri or artifact.uri
                artifact.metadata.Clear()
                artifact.metadata.MergeFrom(reported.metadata)
            run.outputs[key] = [artifact]
        for key, value in written.parameter_values.items():
            run.output_parameters[key] = value
        for key in component.output_definitions.parameters:
            if key not in run.output_parameters:
                path = executor_input.outputs.parameters[key].output_file
                if os.path.exists(path):
                    with open(path) as f:
                        run.output_parameters[key] = struct_pb2.Value(string_value=f.read())
        return run

    def _run_importer(self, name, component, importer) -> TaskRun:
        source = importer.artifact_uri
        if source.HasField("constant_value"):
            uri = source.constant_value.string_value
        elif source.HasField("constant"):
            uri = source.constant.string_value
        else:
            uri = str(self.parameters[source.runtime_parameter])
        [key] = list(component.output_definitions.artifacts) or ["artifact"]
        artifact = pb.RuntimeArtifact(name=f"{self.run_id}/{name}/{key}",
                                      type=importer.type_schema, uri=uri)
        if importer.HasField("metadata"):
            artifact.metadata.CopyFrom(importer.metadata)
        return TaskRun(name, "importer", outputs={key: [artifact]})

    def _run_resolver(self, name, resolver, inputs) -> TaskRun:
        run = TaskRun(name, "resolver")
        for key, query in resolver.output_artifact_queries.items():
            expression, unresolved = query.filter, False

            def metadata(match: re.Match) -> str:
                nonlocal unresolved
                artifacts = inputs.get(match.group(1)) or []
                if not artifacts:
                    unresolved = True
                    return ""
                value = json_format.MessageToDict(artifacts[0].metadata).get(match.group(2))
                if value is None:
                    unresolved = True
                    return ""
                return str(value)

            expression = _INPUT_METADATA.sub(metadata, expression)
            if "{{$" in expression:
                raise LauncherError(f"resolver task {name}: unsupported placeholder in "
                                    f"{query.filter!r}")
            # A query on an input that resolved to nothing finds nothing.
            run.outputs[key] = [] if unresolved else self.store.query(name, expression)
        return run


def parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise LauncherError(f"--param {item!r}: expected NAME=VALUE")
        params[name] = value
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubeflow.local_launcher",
        description="Run a compiled KFP v2 pipeline spec locally, task by task, as the KFP "
                    "launcher would (compile it with `retrieval-pipeline --kubeflow "
                    "--image_root .` so the steps read this checkout).")
    parser.add_argument("job", help="the pipeline job JSON (retrieval-pipeline --kubeflow)")
    parser.add_argument("--pipeline_root", help="local folder for the pipeline root "
                        "(default: the spec's runtimeConfig.gcsOutputDirectory)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="set a pipeline parameter of the spec; repeatable")
    parser.add_argument("--run_id", help="names this run's folder under the pipeline root "
                        "(default run-<date>-<time>)")
    parser.add_argument("--parallelism", type=int, default=os.cpu_count() or 1,
                        help="tasks run at once when their inputs are ready (default: CPUs)")
    args = parser.parse_args(argv)
    try:
        launcher = Launcher(args.job, args.pipeline_root, parse_params(args.param), args.run_id)
        launcher.run(args.parallelism)
    except LauncherError as error:
        print(f"local_launcher: {error}", file=sys.stderr)
        return 1
    print(f"local_launcher: ran {len(launcher.runs)} tasks; outputs under {launcher.run_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
