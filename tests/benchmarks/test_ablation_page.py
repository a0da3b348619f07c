"""docs/ablation.md's rows spell out each change against its base row
(tests/benchmarks/test_pages.py checks the page is the generated one)."""

import os

from benchmarks import ablation_page


def test_changes_are_spelled_out_against_the_base_row():
    results = {"variants": {"single_model": {"ensemble": {"size": 1}},
                            "no_logq": {"ensemble": {"size": 1},
                                        "loss": {"logq_correction": False}},
                            "defaults": {}},
               "base_of": {"single_model": None, "no_logq": "single_model", "defaults": None}}
    assert ablation_page.changes("no_logq", results) == "`model.loss.logq_correction=false`"
    assert ablation_page.changes("single_model", results) == "`model.ensemble.size=1`"
    assert ablation_page.changes("defaults", results) == "the defaults"
    assert os.path.basename(ablation_page.OUTPUT) == "ablation.md"


def test_verdicts_weigh_each_difference_against_the_seed_noise():
    def dataset(option_hit, seed_hit):
        return {"model": {"single_model": {"hit_rate@100": 0.40},
                          "single_model_seed_43": {"hit_rate@100": seed_hit},
                          "option": {"hit_rate@100": option_hit}}}

    results = {"variants": {"single_model": {}, "single_model_seed_43": {}, "option": {}},
               "base_of": {"single_model": None, "single_model_seed_43": "single_model",
                           "option": "single_model"},
               "datasets": {"a": dataset(0.43, 0.41), "b": dataset(0.42, 0.395)}}
    table = ablation_page.verdict_table(results)
    rows = [line for line in table if line.startswith("| option |")][1:]
    assert rows == ["| option | +0.0300 (0.0100) | +0.0200 (0.0050) | helps |"]
    # An option run on some datasets only is judged on those.
    del results["datasets"]["b"]["model"]["option"]
    table = ablation_page.verdict_table(results)
    rows = [line for line in table if line.startswith("| option |")][1:]
    assert rows == ["| option | +0.0300 (0.0100) | - | helps |"]
    assert ablation_page.verdict([0.02, -0.02], [0.01, 0.01]) == "mixed"
    assert ablation_page.verdict([-0.02, -0.03], [0.01, 0.01]) == "hurts"
    assert ablation_page.verdict([0.005, -0.003], [0.01, 0.01]) == "within noise"
