"""deploy/kserve's InferenceService against KServe's published fields.

KServe's CRD schema is not in any package installable here (the `kserve`
SDK needs protobuf 6, TFX needs <5), so kserve_v1beta1_fields.json holds
the SDK's model classes' fields and types (scripts/kserve_fields.py, from
the kserve 0.21.0 wheel; the SDK is generated from KServe's OpenAPI spec).
Every field must be one of them, recursively; values of Kubernetes types
(resources, probes, metadata, ...) are validated against the Kubernetes
schemas of kubernetes-validate. Not checked: KServe's webhook rules (e.g.
one of model/containers), enum values, and what the cluster's serving
runtimes accept (modelFormat and runtimeVersion).
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import referencing
from importlib_resources import files

from tests.deploy.kustomize import build

REPO_ROOT = Path(__file__).resolve().parents[2]
FIELDS = json.loads((Path(__file__).with_name("kserve_v1beta1_fields.json")).read_text())
SCHEMAS = files("kubernetes_validate") / "kubernetes-json-schema" / "v1.30.0-local-strict"
DEFINITIONS = json.loads((SCHEMAS / "_definitions.json").read_text())
REGISTRY = referencing.Registry().with_resource(
    DEFINITIONS["$id"], referencing.Resource.from_contents(DEFINITIONS))
SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def kubernetes_definition(type_name: str) -> str:
    """SDK type name -> OpenAPI definition: V1Probe -> io.k8s.api.core.v1.Probe."""
    match = re.fullmatch(r"K8sIoApi(\w+?)(V\d\w*?)([A-Z]\w+)", type_name)
    if match:
        group, version, kind = match.groups()
        return f"io.k8s.api.{group.lower()}.{version.lower()}.{kind}"
    kind = type_name[2:]
    for prefix in ("io.k8s.api.core.v1.", "io.k8s.apimachinery.pkg.apis.meta.v1."):
        if prefix + kind in DEFINITIONS["$defs"]:
            return prefix + kind
    raise KeyError(type_name)


def check(value, type_name: str, path: str) -> list[str]:
    """Problems of `value` as KServe's `type_name` (empty: fine)."""
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for n, item in enumerate(value) for p in check(item, m.group(1), f"{path}[{n}]")]
    if m := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        return [p for k, v in value.items() for p in check(v, m.group(1), f"{path}.{k}")]
    if type_name == "ResourceQuantity":
        return [] if isinstance(value, (str, int, float)) else [f"{path}: not a quantity"]
    if type_name in SCALARS:
        return [] if isinstance(value, SCALARS[type_name]) else [f"{path}: not a {type_name}"]
    if type_name in FIELDS["classes"]:
        cls = FIELDS["classes"][type_name]
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({type_name})"]
        problems = [f"{path}.{k}: not a field of {type_name}" for k in value
                    if k not in cls["fields"]]
        problems += [f"{path}.{k}: required by {type_name}" for k in cls["required"]
                     if k not in value]
        return problems + [p for k, v in value.items() if k in cls["fields"]
                           for p in check(v, cls["fields"][k], f"{path}.{k}")]
    schema = {"$ref": f"{DEFINITIONS['$id']}#/$defs/{kubernetes_definition(type_name)}"}
    validator = jsonschema.Draft202012Validator(schema, registry=REGISTRY)
    return [f"{path}.{'.'.join(map(str, e.path))}: {e.message}"
            for e in validator.iter_errors(value)]


def inference_service() -> dict:
    (resource,) = build(REPO_ROOT / "deploy" / "kserve")
    return resource


def test_inference_service_uses_only_kserve_fields():
    resource = inference_service()
    assert resource["apiVersion"] == "serving.kserve.io/v1beta1"
    assert resource["kind"] == "InferenceService"
    assert check(resource, FIELDS["root"], "InferenceService") == []


def test_it_serves_the_brute_force_export_as_retrieval():
    resource = inference_service()
    model = resource["spec"]["predictor"]["model"]
    # KServe names the model after the InferenceService: clients ask for `retrieval`.
    assert resource["metadata"]["name"] == "retrieval"
    assert model["modelFormat"]["name"] == "tensorflow"
    assert model["storageUri"].endswith("/serving/retrieval_brute_force")
    assert model["resources"]["requests"]["cpu"]


@pytest.mark.parametrize("change, problem", [
    (lambda r: r["spec"]["predictor"]["model"].update(storageURI="gs://x"),
     "predictor.model.storageURI: not a field of V1beta1ModelSpec"),
    (lambda r: r["spec"]["predictor"]["model"]["resources"].update(request={"cpu": "1"}),
     "Additional properties are not allowed ('request' was unexpected)"),
    (lambda r: r["spec"]["predictor"].update(minReplicas="1"),
     "predictor.minReplicas: not a int"),
])
def test_a_misspelt_or_mistyped_field_is_reported(change, problem):
    resource = inference_service()
    change(resource)
    problems = check(resource, FIELDS["root"], "InferenceService")
    assert any(problem in p for p in problems), problems
