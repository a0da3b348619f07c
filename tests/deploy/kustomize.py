"""The part of `kustomize build` that deploy/ uses, for checking it offline
(no kustomize or kubectl here): `resources` (files and directories, followed
recursively), `patches` given by `path` (strategic merge, target found by the
patch's apiVersion, kind and name), and `images` (newName/newTag).

Strategic merge here: maps merge key by key, a null deletes the key, a list
of maps that all have a `name` merges item by item on it (the merge key of
containers, initContainers, volumes, volumeMounts and env), and any other
list is replaced whole (as Kubernetes does for args and command). Lists
merged on other keys (ports: containerPort) and `$patch` directives are not
implemented: a patch that needs them is refused, not silently mis-merged.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "patches", "images"}


def load_yaml_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def key(resource: dict) -> tuple[str, str, str]:
    return resource["apiVersion"], resource["kind"], resource["metadata"]["name"]


def merge(base, patch):
    """Strategic merge of `patch` into `base` (module docstring)."""
    if isinstance(patch, dict):
        if any(k.startswith("$") for k in patch):
            raise ValueError(f"unsupported patch directive in {sorted(patch)}")
        out = dict(base) if isinstance(base, dict) else {}
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = merge(out.get(k), v)
        return out
    if isinstance(patch, list) and patch and all(isinstance(i, dict) for i in patch):
        if not all("name" in i for i in patch):
            raise ValueError(f"list without a `name` merge key in a patch: {patch}")
        out = [copy.deepcopy(i) for i in base or []]
        for item in patch:
            at = next((n for n, b in enumerate(out) if b.get("name") == item["name"]), None)
            if at is None:
                out.append(merge({}, item))
            else:
                out[at] = merge(out[at], item)
        return out
    return copy.deepcopy(patch)


def build(directory: Path) -> list[dict]:
    """The resources `kustomize build directory` would print (as above)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise ValueError(f"{directory}: kustomization fields not checked here: {unknown}")
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += build(path) if path.is_dir() else load_yaml_documents(path)
    for entry in kustomization.get("patches", []):
        if set(entry) != {"path"}:
            raise ValueError(f"{directory}: only `patches: - path:` is handled: {entry}")
        for patch in load_yaml_documents(directory / entry["path"]):
            targets = [n for n, r in enumerate(resources) if key(r) == key(patch)]
            if len(targets) != 1:
                raise ValueError(f"{directory / entry['path']}: patch target {key(patch)} "
                                 f"matches {len(targets)} resources")
            resources[targets[0]] = merge(resources[targets[0]], patch)
    for rule in kustomization.get("images", []):
        for resource in resources:
            for container in pod_containers(resource):
                name, _, _ = container["image"].partition(":")
                if name == rule["name"]:
                    tag = rule.get("newTag") or container["image"].partition(":")[2]
                    container["image"] = f"{rule.get('newName', name)}:{tag}".rstrip(":")
    return resources


def pod_containers(resource: dict) -> list[dict]:
    """The containers and init containers of a workload's pod template."""
    spec = resource.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])
