"""The step image's name and tag: the one place they are written.

`retrieval-pipeline --kubeflow` and kubeflow/compile.py default ``--image``
to DEFAULT_IMAGE, `make image` builds and tags it, and deploy/ (kustomize
``images:``) runs retrieval-serve from it; tests/kubeflow/test_image.py
checks that those agree with this file.

    python -m pipeline.image [REGISTRY]   # prints [REGISTRY/]NAME:TAG
"""

from __future__ import annotations

import sys

IMAGE_NAME = "retrieval-pipeline"
IMAGE_TAG = "0.1.0"
DEFAULT_IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"


def image(registry: str = "") -> str:
    """``REGISTRY/NAME:TAG`` (``NAME:TAG`` without a registry)."""
    return f"{registry.rstrip('/')}/{DEFAULT_IMAGE}" if registry else DEFAULT_IMAGE


if __name__ == "__main__":
    print(image(sys.argv[1] if len(sys.argv) > 1 else ""))
