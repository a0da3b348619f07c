"""The pages in docs/ made from benchmarks/results are the generated ones, never typed."""

import json
import os

import pytest

from benchmarks import ablation_page, backtest_page, channels_page, item2vec_page, rerank_page


@pytest.mark.parametrize("generator", [ablation_page, backtest_page, channels_page,
                                       item2vec_page, rerank_page],
                         ids=lambda g: g.__name__.rsplit(".", 1)[-1])
def test_the_page_is_the_generated_one(generator):
    with open(generator.RESULTS) as f:
        results = json.load(f)
    with open(generator.OUTPUT) as f:
        page = f.read()
    assert page == generator.page(results), (
        f"{os.path.relpath(generator.OUTPUT, generator.REPO)} differs from "
        f"{os.path.relpath(generator.RESULTS, generator.REPO)}: run "
        f"`python -m {generator.__name__}`")
