"""deploy/ checked offline: every kustomization built (tests/deploy/kustomize.py)
and each resource validated against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), then what the
schemas cannot say: probes, ports, drain time, image, model config."""

import ast
import re
from pathlib import Path

import kubernetes_validate
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline.image import IMAGE_NAME, IMAGE_TAG
from pipeline.serving_config import build_config
from tests.deploy.kustomize import build, load_yaml_documents, pod_containers
from tests.kubeflow.test_lock import lock_pins

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
KUBERNETES_VERSION = "1.30.0"
OVERLAYS = ["base", "overlays/pvc", "overlays/gcs", "overlays/tf-serving"]
STOCK_TF_SERVING = "tensorflow/serving:2.16.1"


def kustomizations() -> list[Path]:
    return sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))


def server_flags() -> set[str]:
    """retrieval-serve's flags, read from serving/server.py (no TensorFlow import)."""
    tree = ast.parse((REPO_ROOT / "serving" / "server.py").read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
            and node.args and isinstance(node.args[0], ast.Constant)}


def flags(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) if "=" in a else (a, "") for a in args)


def deployment(resources: list[dict]) -> dict:
    (found,) = [r for r in resources if r["kind"] == "Deployment"]
    return found


def server(resources: list[dict]) -> dict:
    (found,) = [c for c in pod_containers(deployment(resources)) if c["name"] == "retrieval-serve"]
    return found


def test_every_kustomization_is_checked_here():
    assert {str(p.relative_to(DEPLOY)) for p in kustomizations()} == set(OVERLAYS) | {"kserve"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_built_resources_validate_against_the_kubernetes_schemas(overlay):
    resources = build(DEPLOY / overlay)
    assert {r["kind"] for r in resources} >= {"Deployment", "Service", "HorizontalPodAutoscaler"}
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{overlay}: {resource['kind']}/{resource['metadata']['name']}: "
                        f"{path}: {error.message}")


def test_every_resource_file_validates_or_is_a_patch():
    """Files listed as resources validate on their own; patches are checked
    once merged (above), and each must find its target (kustomize.build)."""
    for directory in kustomizations():
        if directory.name == "kserve":
            continue
        for path in directory.glob("*.yaml"):
            if path.name == "kustomization.yaml":
                continue
            for resource in load_yaml_documents(path):
                if path.name in {p.get("path") for p in
                                 load_yaml_documents(directory / "kustomization.yaml")[0]
                                 .get("patches", [])}:
                    continue
                kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["base", "overlays/pvc", "overlays/gcs"])
def test_retrieval_serve_probes_ports_and_drain(overlay):
    resources = build(DEPLOY / overlay)
    container = server(resources)
    assert container["image"] == f"{IMAGE_NAME}:{IMAGE_TAG}"
    assert container["command"] == ["retrieval-serve"]
    args = flags(container["args"])
    assert set(args) <= server_flags(), set(args) - server_flags()
    assert args["--host"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": int(args["--port"]), "http": int(args["--rest_api_port"])}
    model = args["--model_name"]
    # Start-up and readiness: serving/status.py on the REST port and model served.
    for probe in ("startupProbe", "readinessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[0] == "retrieval-serve-status"
        assert flags(command[1:]) == {"--rest_api_port": args["--rest_api_port"],
                                      "--model_name": model}
    liveness = container["livenessProbe"]["httpGet"]
    assert liveness["path"] == f"/v1/models/{model}" and liveness["port"] == "http"
    # The pod is killed only after preStop and the server's drain have run.
    pod = deployment(resources)["spec"]["template"]["spec"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + int(args["--drain_seconds"])
    # The models volume is mounted where --model_base_path points.
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["models"]
    assert args["--model_base_path"].startswith(mount + "/")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_hpa_resources_and_volumes_fit_the_deployment(overlay):
    resources = build(DEPLOY / overlay)
    workload = deployment(resources)
    pod = workload["spec"]["template"]
    (service,) = [r for r in resources if r["kind"] == "Service"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    named_ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"]
                   for p in c.get("ports", [])}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(named_ports)
    (hpa,) = [r for r in resources if r["kind"] == "HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        workload["apiVersion"], workload["kind"], workload["metadata"]["name"])
    # CPU utilization is measured against requests: every container needs one.
    for container in pod_containers(workload):
        assert container["resources"]["requests"]["cpu"], container["name"]
        assert container["resources"]["requests"]["memory"], container["name"]
    # Each volume has exactly one source (a patch that adds one must drop the other).
    volumes = {v["name"]: set(v) - {"name"} for v in pod["spec"]["volumes"]}
    assert all(len(source) == 1 for source in volumes.values()), volumes
    mounted = {m["name"] for c in pod_containers(workload) for m in c.get("volumeMounts", [])}
    assert mounted <= set(volumes)
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
              if "persistentVolumeClaim" in v}
    assert claims <= {r["metadata"]["name"] for r in resources
                      if r["kind"] == "PersistentVolumeClaim"}
    account = pod["spec"].get("serviceAccountName")
    assert account is None or account in {r["metadata"]["name"] for r in resources
                                          if r["kind"] == "ServiceAccount"}


def test_models_come_from_an_overlay_not_the_base_placeholder():
    def source(overlay):
        (volume,) = [v for v in deployment(build(DEPLOY / overlay))["spec"]["template"]["spec"]
                     ["volumes"] if v["name"] == "models"]
        return set(volume) - {"name"}

    assert source("base") == {"emptyDir"}
    assert source("overlays/pvc") == {"persistentVolumeClaim"}
    assert source("overlays/gcs") == {"emptyDir"}
    gcs = deployment(build(DEPLOY / "overlays/gcs"))["spec"]["template"]["spec"]
    base_path = flags(server(build(DEPLOY / "overlays/gcs"))["args"])["--model_base_path"]
    assert base_path in gcs["initContainers"][0]["command"]
    sync = [c for c in gcs["containers"] if c["name"] == "models-sync"][0]
    assert base_path in sync["args"][0]
    # Settling must outlast a sync round, or a half-copied version is loaded.
    settle = float(flags(server(build(DEPLOY / "overlays/gcs"))["args"])
                   ["--model_version_settle_seconds"])
    assert settle > 2 * int(re.search(r"sleep (\d+)", sync["args"][0]).group(1))


def test_stock_tf_serving_serves_the_brute_force_export_from_its_config():
    resources = build(DEPLOY / "overlays/tf-serving")
    (container,) = deployment(resources)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == STOCK_TF_SERVING
    # Same TensorFlow minor version as training.
    tf_minor = ".".join(str(lock_pins()["tensorflow"]).split(".")[:2])
    assert STOCK_TF_SERVING.split(":")[1].startswith(tf_minor + ".")
    args = flags(container["args"])
    config_path = Path(args["--model_config_file"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = {v["name"]: v for v in deployment(resources)["spec"]["template"]["spec"]["volumes"]}[
        mounts[str(config_path.parent)]]
    (config_map,) = [r for r in resources if r["kind"] == "ConfigMap"
                     and r["metadata"]["name"] == volume["configMap"]["name"]]
    config = text_format.Parse(config_map["data"][config_path.name],
                               model_server_config_pb2.ModelServerConfig())
    # pipeline/serving_config.py's entry for the brute_force export, named `retrieval`,
    # under the models volume's mount.
    models_mount = {v: k for k, v in mounts.items()}["models"]
    assert config == build_config({"retrieval": f"{models_mount}/retrieval_brute_force"})
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(container[probe]) & {"exec", "httpGet", "grpc", "tcpSocket"} == {"httpGet"}
        assert container[probe]["httpGet"]["path"] == "/v1/models/retrieval"
