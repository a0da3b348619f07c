"""The project's artifact types under their KFP schema titles.

KubeflowV2DagRunner writes a custom artifact type as the schema title
``<namespace>.<Name>`` (``retrieval.VocabStats``), and TFX's container
entrypoint (kubeflow_v2_run_executor) imports that title as a class path to
rebuild the artifact. This module makes ``retrieval.VocabStats`` and the
others importable in the step image; the types themselves live in
components/artifacts.py, whose TYPE_NAMEs (and so the MLMD type names of
existing stores) stay as they are.
"""

from components.artifacts import (
    DataValidation,
    QuarantinedClicks,
    Ranker,
    RecallChannels,
    VocabStats,
)

__all__ = ["DataValidation", "QuarantinedClicks", "Ranker", "RecallChannels", "VocabStats"]
