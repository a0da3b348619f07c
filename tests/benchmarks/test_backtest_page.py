"""docs/backtest.md's cut-off rows (tests/benchmarks/test_pages.py checks the
page is the generated one)."""

from benchmarks import backtest_page


def test_a_daily_cutoff_that_was_not_blessed_says_the_previous_version_served():
    scorers = {"model": {"all": {"hit@100": 0.3}}, "recent_popularity": {"all": {"hit@100": 0.2}}}
    cutoff = {"fraction": 0.9, "train_clicks": 1000, "target_clicks": 50, "new_item_share": 0.1,
              "pushed": False, "daily": True,
              "protocols": {"fresh": {"scorers": scorers}, "frozen": {"scorers": scorers}}}
    row = backtest_page.cutoff_rows({"cutoffs": [cutoff]})[-1]
    assert row.startswith("| 0.9 | daily (--since base) | 1,000 | 50 | 0.1 | "
                          "no: the previous version served | 1.500x | 1.500x |"), row


def test_a_first_cutoff_that_was_not_blessed_says_nothing_was_scored():
    cutoff = {"fraction": 0.85, "train_clicks": 1000, "target_clicks": 50, "pushed": False}
    row = backtest_page.cutoff_rows({"cutoffs": [cutoff]})[-1]
    assert row == ("| 0.85 | full | 1,000 | 50 | - | no, and no earlier version: not scored "
                   "| - | - |"), row
