import os

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline import serving_config


def _parse(path):
    with open(path) as f:
        return text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())


def test_writes_local_and_container_configs_for_pushed_models(tmp_path):
    (tmp_path / "retrieval" / "1700000000").mkdir(parents=True)
    (tmp_path / "retrieval_brute_force" / "1700000000").mkdir(parents=True)
    paths = serving_config.write_configs(str(tmp_path),
                                         ["retrieval", "retrieval_brute_force", "absent"])
    local = _parse(paths["local"]).model_config_list.config
    assert [(c.name, c.base_path, c.model_platform) for c in local] == [
        ("retrieval", os.path.join(str(tmp_path), "retrieval"), "tensorflow"),
        ("retrieval_brute_force", os.path.join(str(tmp_path), "retrieval_brute_force"),
         "tensorflow")]
    docker = _parse(paths["docker"]).model_config_list.config
    assert [c.base_path for c in docker] == ["/models/retrieval", "/models/retrieval_brute_force"]


def test_nothing_pushed_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="none of the models"):
        serving_config.write_configs(str(tmp_path), ["retrieval"])
