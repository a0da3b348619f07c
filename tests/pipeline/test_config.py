"""The pipeline configuration: YAML plus overrides, checked as one tree."""

import os

import pytest

from clicklog.config import ConfigError
from pipeline.config import PipelineConfig, load_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_overrides_are_typed_and_land_in_their_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  training:\n    epochs: 2\nevaluation:\n  ks: [5, 10]\n"
                    "  blessing_k: 10\n")
    config = load_config(str(path), ["model.training.epochs=3", "model.towers.similarity=cosine",
                                     "evaluation.min_lift=1.5"])
    assert isinstance(config, PipelineConfig)
    assert config.model.training.epochs == 3 and config.model.towers.similarity == "cosine"
    assert config.evaluation.ks == (5, 10) and config.evaluation.min_lift == 1.5
    assert config.pipeline.model_name == "retrieval"
    assert config.model.towers.embedding_dim == 64  # the rest keeps its defaults


@pytest.mark.parametrize("assignment,message", [
    ("epochs=3", "expected section.key=value"),
    ("hparams.epochs=3", "section one of"),
    ("model.training.epochs", "expected section.key=value"),
])
def test_bad_override_names_the_input(assignment, message):
    with pytest.raises(ValueError, match=message) as error:
        load_config(None, [assignment])
    assert assignment in str(error.value)


@pytest.mark.parametrize("assignment,message", [
    ("model.towers.user_id=maybe", "model.towers.user_id='maybe': expected true or false"),
    ("model.towers.embedding_dim=0", "model.towers.embedding_dim=0: expected an integer >= 1"),
    ("model.loss.kind=soft", r"model.loss.kind='soft': expected one of \['softmax', 'nce', 'bce', "
                             r"'triplet_hinge', 'triplet_logistic'\]"),
    ("model.training.learning_rate=-0.1",
     "model.training.learning_rate=-0.1: expected a number > 0"),
    ("model.export.top_k=0", "model.export.top_k=0: expected an integer >= 1"),
    ("model.training.epochs=3.5", "model.training.epochs=3.5: expected an integer >= 1"),
    ("pipeline.model_name=a/b", "pipeline.model_name='a/b': expected a non-empty name"),
])
def test_every_bad_value_fails_before_any_component_runs(assignment, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(None, [assignment])
    assert "\n" not in str(error.value)


def test_unknown_section_in_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hparms:\n  epochs: 2\n")
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['hparms'\]"):
        load_config(str(path))


def test_nested_override_sets_and_clears_the_item_catalog():
    config = load_config(None, ["vocab.item_catalog.path=m.dat",
                                "vocab.item_catalog.features={title: text}"])
    assert config.vocab.item_catalog.path == os.path.abspath("m.dat")
    assert config.vocab.item_catalog.features == (("title", "text"),)
    assert load_config(None, ["vocab.item_catalog.path=m.dat",
                              "vocab.item_catalog=null"]).vocab.item_catalog is None
    with pytest.raises(ValueError, match=r"vocab.max_items is 3, not a mapping"):
        load_config(None, ["vocab.max_items=3", "vocab.max_items.x=1"])


SCHEMA = ["ingestion.schema.user_features={country: string}",
          "ingestion.schema.item_features={genres: string_list}",
          "ingestion.schema.context_features={device: string, hour: int}"]


def test_declared_user_and_context_features_are_accepted_as_query_features():
    config = load_config(None, SCHEMA + ["model.towers.query_features={country: string, "
                                         "hour: int}", "model.towers.recency=true"])
    assert config.model.towers.query_features == (("country", "string"), ("hour", "int"))
    # A declared string feature may be read as text (words).
    config = load_config(None, SCHEMA + ["model.towers.query_features={device: text}"])
    assert config.model.towers.query_features == (("device", "text"),)


@pytest.mark.parametrize("query_features, message", [
    ("{browser: string}", r"model.towers.query_features.browser='string': expected a user or "
                          r"context feature declared in ingestion.schema \(declared: "
                          r"\['country', 'device', 'hour'\]\)"),
    ("{genres: string_list}", r"model.towers.query_features.genres='string_list': expected a "
                              "user or context feature"),
    ("{hour: float}", r"model.towers.query_features.hour='float': expected 'int', the type "
                      "ingestion.schema declares"),
    ("{hour: text}", r"model.towers.query_features.hour='text': expected 'int', the type "
                     r"ingestion.schema declares$"),
    ("{device: int}", r"model.towers.query_features.device='int': expected 'string', the type "
                      r"ingestion.schema declares \(or 'text' for a string read as words\)"),
])
def test_query_features_must_match_the_schema(query_features, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, SCHEMA + [f"model.towers.query_features={query_features}"])


def test_impressed_negatives_need_impression_rows_to_come_from():
    with pytest.raises(ConfigError, match=r"model.negatives.impressions=5: expected 0 unless "
                                          r"ingestion.impression_event_types"):
        load_config(None, ["model.negatives.impressions=5"])
    config = load_config(None, ["ingestion.schema.event_type=event",
                                "ingestion.impression_event_types=[impression]",
                                "model.negatives.impressions=5"])
    assert config.ingestion.impression_event_types == ("impression",)


def test_demo_config_joins_the_bundled_movies_catalog(monkeypatch, tmp_path):
    from components.vocab_stats_gen import item_catalog

    monkeypatch.chdir(tmp_path)  # paths in a config file are read from its directory
    config = load_config(os.path.join(REPO_ROOT, "configs", "movietweetings.yaml"))
    catalog = config.vocab.item_catalog
    assert catalog.path == os.path.join(REPO_ROOT, "data", "movietweetings-100k", "movies.dat")
    assert dict(catalog.features) == {"title": "text", "genres": "string_list"}
    assert list(item_catalog.resolve_catalog_files(catalog).values()) == [("dat", None)]
    # Unclicked catalog movies are not candidates: in this movies.dat they are
    # exactly the eval period's new movies (configs/movietweetings.yaml).
    assert not catalog.include_unclicked


def test_paths_from_set_are_read_from_the_working_directory_and_urls_kept(monkeypatch,
                                                                         tmp_path):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, ["vocab.item_catalog.path=movies.dat"])
    assert config.vocab.item_catalog.path == str(tmp_path / "movies.dat")
    remote = load_config(None, ["vocab.item_catalog.path=gs://b/movies.dat"])
    assert remote.vocab.item_catalog.path == "gs://b/movies.dat"
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "c.yaml").write_text("vocab:\n  item_catalog:\n    path: m/x.dat\n")
    from_file = load_config(str(tmp_path / "conf" / "c.yaml"))
    assert from_file.vocab.item_catalog.path == str(tmp_path / "conf" / "m" / "x.dat")


def test_since_flag_becomes_training_overrides(capsys):
    from pipeline.cli import main, since_overrides

    config = load_config(None, since_overrides("1600000000"))
    assert config.model.training.since == 1_600_000_000
    assert not config.model.training.since_base_model
    daily = load_config(None, since_overrides("base")).model.training
    assert daily.warm_start and daily.since_base_model and daily.since is None
    assert since_overrides(None) == []
    # A bad value fails before anything runs, naming the flag and the value.
    assert main(["--data", "d.csv", "--output", "out", "--since", "yesterday"]) == 2
    assert "--since 'yesterday': expected unix seconds or 'base'" in capsys.readouterr().err


CONFIG_FILES = sorted(name for name in os.listdir(os.path.join(REPO_ROOT, "configs"))
                      if name.endswith(".yaml"))
# configs/ file -> the Beam runner its pipeline.beam_args name (None: the default).
RUNNERS = {"dataflow.yaml": "DataflowRunner", "flink.yaml": "FlinkRunner",
           "movietweetings.yaml": None}


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_file_loads_and_beam_knows_its_beam_args(name):
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from components.beam_runner import is_local_runner

    assert name in RUNNERS, f"configs/{name}: add it to RUNNERS with the runner it names"
    config = load_config(os.path.join(REPO_ROOT, "configs", name))
    args = list(config.pipeline.beam_args)
    options = PipelineOptions(args)
    assert options.view_as(StandardOptions).runner == RUNNERS[name]
    assert is_local_runner(args) is (RUNNERS[name] is None)
    # Beam drops flags it does not know with only a log line: a misspelt
    # flag in an example must fail here instead.
    known = options.get_all_options(retain_unknown_options=False)
    unknown = set(options.get_all_options(retain_unknown_options=True)) - set(known)
    assert not unknown, f"configs/{name}: flags Beam does not know: {sorted(unknown)}"
