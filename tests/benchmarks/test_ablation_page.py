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
