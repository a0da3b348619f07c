import pytest

from clicklog.config import ConfigError, parse
from components.topk_evaluator.blessing import decide_blessing
from components.topk_evaluator.config import EvaluationConfig


def _result(model, popularity, recent, last=None):
    metrics = {"model": {"recall@10": model}, "popularity": {"recall@10": popularity},
               "recent_popularity": {"recall@10": recent}}
    if last is not None:
        metrics["last_blessed"] = {"recall@10": last}
    return {"metrics": metrics}


CONFIG = dict(ks=(10,), blessing_k=10, min_recall=0.1, min_lift=1.1,
              lift_baselines=("popularity", "recent_popularity"), max_regression=0.1,
              min_ann_recall=0.9)


def _by_name(checks):
    return {c["check"]: c for c in checks}


def test_blessed_when_every_check_passes_and_reasons_say_why():
    blessed, checks = decide_blessing(_result(0.5, 0.3, 0.4, last=0.52),
                                      EvaluationConfig(**CONFIG), {"recall@20": 0.95})
    assert blessed
    got = _by_name(checks)
    # Best baseline is recent popularity (0.4): needs 1.1 x 0.4 = 0.44.
    assert got["min_lift"]["threshold"] == pytest.approx(0.44)
    assert "best baseline recent_popularity 0.4000" in got["min_lift"]["reason"]
    # 0.9 x 0.52 = 0.468 <= 0.5.
    assert got["max_regression"]["threshold"] == pytest.approx(0.468)
    assert got["min_ann_recall"]["reason"].startswith("pass: ANN recall@20 0.9500 >= ")
    assert all(c["reason"].startswith("pass: ") for c in checks)


@pytest.mark.parametrize("result,ann,failing", [
    (_result(0.05, 0.01, 0.01), {"recall@20": 1.0}, "min_recall"),
    (_result(0.43, 0.3, 0.4), {"recall@20": 1.0}, "min_lift"),  # 0.43 < 0.44
    (_result(0.5, 0.3, 0.4, last=0.6), {"recall@20": 1.0}, "max_regression"),  # < 0.54
    (_result(0.5, 0.3, 0.4), {"recall@20": 0.89}, "min_ann_recall"),
])
def test_each_threshold_alone_blocks_the_blessing(result, ann, failing):
    blessed, checks = decide_blessing(result, EvaluationConfig(**CONFIG), ann)
    assert not blessed
    failed = [c["check"] for c in checks if not c["passed"]]
    assert failed == [failing]
    assert _by_name(checks)[failing]["reason"].startswith("FAIL: ")


def test_by_default_the_strongest_baseline_must_be_beaten_by_a_margin():
    """All-time popularity 0.3271 is not the bar when recent popularity
    scored 0.3929 in the same run; a tie with it is not a win either."""
    config = EvaluationConfig(ks=(10,), blessing_k=10)
    assert config.min_lift > 1.0
    blessed, checks = decide_blessing(_result(0.3929, 0.3271, 0.3929), config)
    assert not blessed
    assert _by_name(checks)["min_lift"]["reason"] == (
        f"FAIL: recall@10 0.3929 <= {config.min_lift:g} x best baseline recent_popularity "
        "0.3929 (evaluation.min_lift)")
    blessed, _ = decide_blessing(_result(0.3929 * 1.03, 0.3271, 0.3929), config)
    assert blessed
    tie, _ = decide_blessing(_result(0.4, 0.3, 0.4), EvaluationConfig(
        ks=(10,), blessing_k=10, min_lift=1.0))
    assert not tie  # min_lift 1: the model must still beat, not tie


def test_without_last_blessed_model_or_ann_those_checks_are_skipped():
    blessed, checks = decide_blessing(_result(0.5, 0.3, 0.4), EvaluationConfig(**CONFIG))
    assert blessed
    got = _by_name(checks)
    assert got["max_regression"]["reason"] == "skipped: no blessed model to compare with yet"
    assert got["min_ann_recall"]["reason"] == "skipped: no ScaNN export to check"


@pytest.mark.parametrize("values,message", [
    ({"ks": [10, 0]}, "evaluation.ks=[10, 0]: expected a list of integers >= 1"),
    ({"ks": []}, "evaluation.ks=(): expected a non-empty list of cut-offs"),
    ({"blessing_k": 20}, "evaluation.blessing_k=20: expected one of ks=[10, 50, 100]"),
    ({"lift_baselines": ["popularity", "random"]},
     "evaluation.lift_baselines=['popularity', 'random']: expected a list of values from "
     "['popularity', 'recent_popularity']"),
    ({"max_regression": 1.5}, "evaluation.max_regression=1.5: expected a number in [0, 1]"),
    ({"min_ann_recall": "high"}, "evaluation.min_ann_recall='high': expected a number in"),
    ({"head_click_share": 0.8, "torso_click_share": 0.3},
     "evaluation.torso_click_share=0.3: expected less than 1 - head_click_share=0.2"),
    ({"min_hit_rate": 0.1}, "evaluation.min_hit_rate=0.1: expected a known key of evaluation"),
])
def test_bad_config_names_the_key_value_and_expectation(values, message):
    with pytest.raises(ConfigError) as error:
        parse(EvaluationConfig, values)
    assert message in str(error.value)


def test_with_recall_channels_the_towers_are_compared_with_the_last_blessed_towers():
    # The merged list (0.5) would pass against the last blessed towers (0.52);
    # the new two-tower channel (0.4) is what compares with them, and fails.
    result = _result(0.5, 0.3, 0.4, last=0.52)
    result.update(protocol="fresh", channels={"protocols": {"fresh": {"metrics": {
        "two_tower": {"recall@10": 0.4}}}}})
    blessed, checks = decide_blessing(result, EvaluationConfig(**CONFIG))
    regression = _by_name(checks)["max_regression"]
    assert not blessed and not regression["passed"]
    assert regression["reason"].startswith("FAIL: two-tower channel recall@10 0.4000 < ")
