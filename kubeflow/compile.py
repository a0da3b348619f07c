"""Compile the retrieval pipeline to a Kubeflow Pipelines v2 spec.

    python kubeflow/compile.py --data gs://BUCKET/clicks/*.csv \
        --output pipeline.json --pipeline_root gs://BUCKET/retrieval \
        --image REGISTRY/retrieval-pipeline:TAG [--config config.yaml]

Same as ``retrieval-pipeline --kubeflow``; submit the JSON with the KFP client
or Vertex AI Pipelines.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["--kubeflow"] + sys.argv[1:]))
