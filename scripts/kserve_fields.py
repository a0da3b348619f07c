"""Writes the InferenceService (serving.kserve.io/v1beta1) field list from a
KServe Python SDK wheel, for tests/deploy/test_kserve.py.

    pip download --no-deps -d /tmp/kserve kserve==0.21.0
    python scripts/kserve_fields.py /tmp/kserve/kserve-0.21.0-py3-none-any.whl \
        > tests/deploy/kserve_v1beta1_fields.json

The SDK cannot be installed beside TFX (it needs protobuf 6); its model
classes are generated from KServe's OpenAPI spec, so their ``openapi_types``
and ``attribute_map`` are the CRD's fields and types. Read with ``ast``,
nothing imported. Status classes are left out: a manifest sets no status.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile

ROOT = "V1beta1InferenceService"


def class_fields(source: str) -> tuple[str, dict[str, str], list[str]]:
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    found = {}
    for node in cls.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    types = ast.literal_eval(found["openapi_types"])
    names = ast.literal_eval(found["attribute_map"])
    required = sorted(names[a] for a in set(re.findall(
        r"Invalid value for `(\w+)`, must not be `None`", source)) if a in names)
    return cls.name, {names[a]: t for a, t in types.items()}, required


def main(wheel: str) -> dict:
    classes = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith("kserve/models/v1beta1_") and name.endswith(".py"):
                cls, fields, required = class_fields(z.read(name).decode())
                classes[cls] = {"fields": fields, "required": required}
        version = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        version = re.search(r"^Version: (.+)$", z.read(version).decode(), re.M).group(1)
    reachable, todo = {}, [ROOT]
    while todo:
        cls = todo.pop()
        if cls in reachable or cls.endswith("Status"):
            continue
        reachable[cls] = classes[cls]
        for type_name in classes[cls]["fields"].values():
            todo += [t for t in re.findall(r"V1beta1\w+", type_name) if t in classes]
    return {"source": f"kserve {version} Python SDK models (scripts/kserve_fields.py)",
            "root": ROOT, "classes": dict(sorted(reachable.items()))}


if __name__ == "__main__":
    json.dump(main(sys.argv[1]), sys.stdout, indent=1, sort_keys=False)
    print()
