"""docs/ablation.md is generated from benchmarks/results/quality.json, never typed."""

import json
import os

from benchmarks import ablation_page


def test_the_ablation_page_is_the_generated_one():
    with open(ablation_page.RESULTS) as f:
        results = json.load(f)
    with open(ablation_page.OUTPUT) as f:
        page = f.read()
    assert page == ablation_page.page(results), (
        "docs/ablation.md differs from benchmarks/results/quality.json: run "
        "`python -m benchmarks.ablation_page`")


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
