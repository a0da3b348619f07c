"""`python -m pipeline.schema` infers the schema a curated one starts from;
the curated default covers every feature a click example has; schema paths
are found from any working directory."""

from __future__ import annotations

import pytest
import tensorflow_data_validation as tfdv

from clicklog import synthetic
from clicklog.errors import InputError
from pipeline import local_runner, schema
from pipeline.config import load_config
from pipeline.pipeline import DEFAULT_SCHEMA, with_absolute_schema_path


def test_the_schema_command_writes_the_inferred_schema_of_the_click_examples(tmp_path, capsys):
    data = synthetic.write(synthetic.SyntheticConfig(num_users=40, num_items=20,
                                                     num_categories=2, clicks_per_user=6,
                                                     seed=1), str(tmp_path / "data"))
    output = tmp_path / "inferred.pbtxt"
    assert schema.main(["--data", data, "--output", str(output),
                        "--set", "pipeline.beam_args=[--direct_running_mode=in_memory]"]) == 0
    assert str(output) in capsys.readouterr().out
    inferred = {f.name for f in tfdv.load_schema_text(str(output)).feature}
    assert {"user_id", "item_id", "timestamp", "weight", "history", "history_at_cutoff",
            "seconds_since_previous_click", "item_age_seconds"} <= inferred
    # The curated default lists every feature a run of the default layout has.
    curated = {f.name for f in tfdv.load_schema_text(DEFAULT_SCHEMA).feature}
    assert inferred <= curated, inferred - curated


def test_the_default_schema_is_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = with_absolute_schema_path(load_config())
    assert config.validation.schema_path == DEFAULT_SCHEMA
    relative = with_absolute_schema_path(load_config(None, ["validation.schema_path=s.pbtxt"]))
    assert relative.validation.schema_path == str(tmp_path / "s.pbtxt")


def test_a_missing_schema_file_stops_the_run_naming_the_key(tmp_path):
    config = load_config(None, [f"validation.schema_path={tmp_path / 'none.pbtxt'}"])
    with pytest.raises(InputError, match=r"validation.schema_path='.*none.pbtxt': no such file"):
        local_runner.run(str(tmp_path), str(tmp_path / "out"), config)
