"""The backtest's queries, scoring and baselines on hand-made logs."""

import subprocess

import numpy as np
import pytest

from benchmarks import backtest
from benchmarks.backtest_baselines import baselines
from models.channels.clicks import Catalogue


def _log(rows):
    return {"user": [r[0] for r in rows], "item": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows]}


LOG = _log([("a", "i1", 10), ("b", "i2", 20), ("a", "i2", 30),
            # cut-off at 40
            ("a", "i3", 40), ("a", "i4", 40), ("c", "i1", 50), ("a", "i5", 60),
            # the next cut-off at 70: not a target
            ("b", "i6", 70)])


def test_queries_build_fresh_and_frozen_histories():
    asked = backtest.queries(LOG, 40, 70)
    fresh = asked["fresh"]
    assert fresh["target"] == ["i3", "i4", "i1", "i5"]
    # Clicks at the same time are not each other's history.
    assert fresh["history"] == [["i1", "i2"], ["i1", "i2"], [], ["i1", "i2", "i3", "i4"]]
    frozen = asked["frozen"]
    assert frozen["user"] == ["a", "c"]
    assert frozen["history"] == [["i1", "i2"], []]  # as they stood at the cut-off
    assert frozen["targets"] == [["i3", "i4", "i5"], ["i1"]]


def test_score_lists_counts_hits_ndcg_and_groups():
    lists = [["x", "t1"] + [f"f{n}" for n in range(98)], ["t2"]]
    scores = backtest.score_lists(lists, [["t1", "missing"], ["t2"]], [[], ["h"] * 7],
                                  new_items={"t2"})
    everything = scores["all"]
    assert everything["clicks"] == 3
    assert everything["hit@10"] == everything["hit@100"] == pytest.approx(round(2 / 3, 4))
    assert everything["ndcg@100"] == pytest.approx(round((1 / np.log2(3) + 1) / 3, 4))
    assert scores["history_none"]["clicks"] == 2 and scores["history_long"]["hit@10"] == 1.0
    assert scores["new_items"] == {"clicks": 1, "hit@10": 1.0, "hit@100": 1.0, "ndcg@100": 1.0}


def test_baselines_rank_co_clicked_and_next_items_and_recent_ones():
    # Two groups of items clicked together; i0 -> i1 is the usual next click.
    users, items, times = [], [], []
    for user in range(40):
        group = ["i0", "i1", "i2"] if user % 2 else ["j0", "j1", "j2"]
        for step, item in enumerate(group):
            users.append(f"u{user}")
            items.append(item)
            times.append(user * 10 + step)
    users += ["late"] * 3
    items += ["k"] * 3
    times += [1000, 1001, 1002]  # only k is clicked in the recent window
    candidates = Catalogue(sorted(set(items)))
    scorers, report = baselines(users, items, times, candidates, recent_fraction=0.1)
    assert report["ease"]["lambda"] in (50.0, 200.0, 500.0, 1000.0)

    def top(name, history, k=2):
        scores = scorers[name]([history])[0]
        return [candidates.item_ids[i] for i in np.argsort(-scores)[:k]]

    assert set(top("ease", ["i0"])) == {"i1", "i2"}
    assert top("last_item", ["j2", "i0"], 1) == ["i1"]
    assert top("recent_popularity", [], 1) == ["k"]
    assert top("popularity", [], 1) != ["k"]  # 3 clicks; every other item 20


def test_daily_cutoffs_continue_the_previous_cutoffs_output(monkeypatch, tmp_path):
    calls = []

    def fake_cutoff(log, start, stop, work, sets, config, dataset, previous=None):
        calls.append((start, stop, work, previous))
        return {"cutoff": start, "protocols": {}}

    monkeypatch.setattr(backtest, "load_log", lambda dataset, root: LOG)
    monkeypatch.setattr(backtest, "backtest_cutoff", fake_cutoff)
    backtest.run_dataset("synthetic", [0.3, 0.6, 0.9], [], tmp_path, daily=True)
    assert [c[2] for c in calls] == [tmp_path / "synthetic" / f"cut{n}" for n in range(3)]
    assert [c[3] for c in calls] == [None, tmp_path / "synthetic" / "cut0" / "out",
                                     tmp_path / "synthetic" / "cut1" / "out"]
    assert [c[1] for c in calls[:-1]] == [c[0] for c in calls[1:]]  # each scored up to the next
    calls.clear()
    backtest.run_dataset("synthetic", [0.3, 0.6], [], tmp_path)
    assert [c[3] for c in calls] == [None, None]


def test_run_pipeline_tells_a_new_version_from_the_one_already_served(monkeypatch, tmp_path):
    served = tmp_path / "out" / "serving" / "retrieval"
    (served / "100").mkdir(parents=True)
    pushes = iter([False, True])

    def fake_cli(command, **kwargs):
        assert command[-2:] == ["--since", "base"]
        if next(pushes):
            (served / "200").mkdir()
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_cli)
    run = backtest.run_pipeline("in.csv", tmp_path / "out", [], None, ["--since", "base"])
    assert not run["pushed"] and run["version_dir"] == served / "100"  # not blessed: old serves
    run = backtest.run_pipeline("in.csv", tmp_path / "out", [], None, ["--since", "base"])
    assert run["pushed"] and run["version_dir"] == served / "200"
