import pytest

from pipeline.config import load_config


def test_overrides_are_typed_and_land_in_their_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hparams:\n  epochs: 2\nevaluation:\n  ks: [5, 10]\n")
    config = load_config(str(path), ["hparams.epochs=3", "hparams.similarity=cosine",
                                     "evaluation.min_lift=1.5"])
    assert config["hparams"] == {"epochs": 3, "similarity": "cosine"}
    assert config["evaluation"] == {"ks": [5, 10], "min_lift": 1.5}
    assert config["pipeline"]["model_name"] == "retrieval"


@pytest.mark.parametrize("assignment,message", [
    ("epochs=3", "expected section.key=value"),
    ("model.epochs=3", "section one of"),
    ("hparams.epochs", "expected section.key=value"),
])
def test_bad_override_names_the_input(assignment, message):
    with pytest.raises(ValueError, match=message) as error:
        load_config(None, [assignment])
    assert assignment in str(error.value)


def test_unknown_section_in_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hparms:\n  epochs: 2\n")
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['hparms'\]"):
        load_config(str(path))
