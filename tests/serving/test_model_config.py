"""--model_config_file parsing and version policies (no server needed)."""

from __future__ import annotations

import os

import pytest

from serving.model_config import (
    ConfigError,
    ModelConfig,
    VersionPolicy,
    read_config_file,
)

CONFIG = """
model_config_list {
  config {
    name: "retrieval"
    base_path: "/models/retrieval"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 3 }
  }
  config {
    name: "retrieval_brute_force"
    base_path: "relative/bf"
    model_version_policy { specific { versions: 7 versions: 5 } }
  }
  config { name: "everything" base_path: "/models/all" model_version_policy { all {} } }
  config { name: "plain" base_path: "/models/plain" }
}
"""


def _write(tmp_path, text):
    path = tmp_path / "models.config"
    path.write_text(text)
    return str(path)


def test_reads_models_policies_and_labels(tmp_path):
    configs = read_config_file(_write(tmp_path, CONFIG))
    assert configs == [
        ModelConfig("retrieval", "/models/retrieval", VersionPolicy("latest", 2),
                    {"stable": 3}),
        ModelConfig("retrieval_brute_force", os.path.abspath("relative/bf"),
                    VersionPolicy("specific", versions=(5, 7))),
        ModelConfig("everything", "/models/all", VersionPolicy("all")),
        ModelConfig("plain", "/models/plain", VersionPolicy("latest", 1)),
    ]


def test_reads_the_pipeline_generated_config(tmp_path):
    from pipeline.serving_config import write_configs

    for name in ("retrieval", "retrieval_brute_force"):
        (tmp_path / name).mkdir()
    written = write_configs(str(tmp_path), ["retrieval", "retrieval_brute_force"])
    configs = read_config_file(written["local"])
    assert [(c.name, c.base_path, c.version_policy) for c in configs] == [
        ("retrieval", str(tmp_path / "retrieval"), VersionPolicy()),
        ("retrieval_brute_force", str(tmp_path / "retrieval_brute_force"), VersionPolicy()),
    ]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model_config_list { config { base_path: '/m' } }", "has no name"),
        ("model_config_list { config { name: 'a' } }", "('a') has no base_path"),
        ("model_config_list { config { name: 'a' base_path: '/m' } "
         "config { name: 'a' base_path: '/n' } }", "'a' appears twice"),
        ("model_config_list { config { name: 'a' base_path: '/m' "
         "model_platform: 'pytorch' } }", "model_platform 'pytorch'"),
        ("model_config_list { config { name: 'a' base_path: '/m' "
         "model_version_policy { specific {} } } }", "specific.versions=[]"),
        ("model_config_list {}", "has no models"),
        ("custom_model_config {}", "expected a model_config_list"),
        ("model_config_list { config { nme: 'a' } }", "not a ModelServerConfig"),
    ],
    ids=["name", "base_path", "duplicate", "platform", "specific", "empty", "custom", "syntax"],
)
def test_invalid_config_names_file_and_problem(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    assert path in str(info.value) or fragment == "specific.versions=[]"
    assert fragment in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read model config file .*nope"):
        read_config_file(str(tmp_path / "nope"))


@pytest.mark.parametrize(
    "policy, expected",
    [
        (VersionPolicy(), {9}),
        (VersionPolicy("latest", 2), {9, 4}),
        (VersionPolicy("latest", 10), {1, 4, 9}),
        (VersionPolicy("all"), {1, 4, 9}),
        (VersionPolicy("specific", versions=(1, 5)), {1}),
    ],
)
def test_policy_selects(policy, expected):
    assert policy.select([4, 1, 9]) == expected
