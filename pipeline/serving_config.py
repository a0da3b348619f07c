"""TF Serving `--model_config_file` for the pushed models.

Two files beside the pushed model directories:
  * ``models.config``: local absolute base paths (for `retrieval-serve` or a
    `tensorflow_model_server` on this machine);
  * ``models.docker.config``: base paths under ``/models/`` for a container
    started with ``-v OUTPUT/serving:/models``.
"""

from __future__ import annotations

import os

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

LOCAL_FILE = "models.config"
DOCKER_FILE = "models.docker.config"
DOCKER_ROOT = "/models"


def build_config(base_paths: dict[str, str]) -> model_server_config_pb2.ModelServerConfig:
    """{model name: base path} -> ModelServerConfig (latest version of each)."""
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in sorted(base_paths.items()):
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = base_path
        entry.model_platform = "tensorflow"
    return config


def write_configs(serving_base: str, model_names: list[str]) -> dict[str, str]:
    """Writes both config files for the models present under `serving_base`.

    Returns:
      {"local": path, "docker": path}.
    """
    serving_base = os.path.abspath(serving_base)
    present = [n for n in model_names if os.path.isdir(os.path.join(serving_base, n))]
    if not present:
        raise ValueError(f"serving base {serving_base!r}: none of the models {model_names} "
                         "has been pushed there")
    written = {}
    for key, file_name, root in (("local", LOCAL_FILE, serving_base),
                                 ("docker", DOCKER_FILE, DOCKER_ROOT)):
        config = build_config({n: os.path.join(root, n) for n in present})
        path = os.path.join(serving_base, file_name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text_format.MessageToString(config))
        written[key] = path
    return written
