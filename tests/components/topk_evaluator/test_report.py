"""The HTML evaluation report: content checks, then rendered in headless Chromium.

The Chromium test needs Debian's `chromium` (scripts/install_chromium.sh; the
Makefile's test target runs it). It writes a screenshot next to the report.
"""

import html
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from components.topk_evaluator import blessing, evaluation
from components.topk_evaluator.config import EvaluationConfig
from components.topk_evaluator.report import render_html

CHROMIUM = "/usr/bin/chromium"
# Appended to a copy of the report: record script errors and decoded images in
# the DOM, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener('error', e => document.body.setAttribute('data-errors',
  (document.body.getAttribute('data-errors') || '') + e.message + ';'));
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  document.body.setAttribute('data-images', images.length);
  document.body.setAttribute('data-decoded',
    images.filter(i => i.complete && i.naturalWidth > 0).length);
});
</script>"""


@pytest.fixture(scope="module")
def result(towers_dir):
    clicks = os.path.join(os.path.dirname(towers_dir), "train.tfrecord.gz")
    config = EvaluationConfig(ks=(1, 5, 10), blessing_k=10, min_ann_recall=0.9)
    out = evaluation.evaluate(towers_dir, clicks, config, baseline_towers_dir=towers_dir)
    ann = {"recall@5": 0.97, "num_queries": 40, "latency_ms_p50": 1.2, "latency_ms_p95": 2.0,
           "latency_ms_p99": 3.1, "latency_calls": 20}
    blessed, checks = blessing.decide_blessing(out, config, ann)
    out.update(blessed=blessed, checks=checks, reasons=[c["reason"] for c in checks], ann=ann,
               config=config.to_dict(), model_uri="/m/1", baseline_model_uri="/m/0")
    return out


def test_report_is_self_contained_with_every_section(result):
    page = render_html(result)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched
    images = re.findall(r'<img class="plot" alt="([^"]+)" src="data:image/png;base64,', page)
    assert images == ["recall@K curves", "recall@10 by item_popularity",
                      "recall@10 by history", "ANN recall and latency"]
    for reason in result["reasons"]:
        assert html.escape(reason) in page
    assert ("BLESSED: the model will be pushed" in page) is result["blessed"]
    for scorer in ("model", "popularity", "recent_popularity", "last_blessed"):
        assert f"<th>{scorer}</th>" in page
    for metric in ("recall@10", "precision@5", "f1@1", "map@10", "ndcg@10", "coverage@10",
                   "mrr"):
        assert f"<td>{metric}</td>" in page
    assert "recall@5 of the ScaNN export" in page


def test_not_blessed_report_shows_the_failed_check(result):
    failed = dict(result, blessed=False, checks=[
        {"check": "min_lift", "passed": False, "value": 0.1, "threshold": 0.2,
         "reason": "FAIL: recall@10 0.1000 < 1 x best baseline popularity 0.2000"}])
    page = render_html(failed)
    assert "NOT BLESSED: the model will not be pushed" in page
    assert '<li class="fail">FAIL: recall@10 0.1000 &lt; 1 x best baseline' in page


def _chromium(*args, timeout=120):
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_report_renders_in_headless_chromium(result, tmp_path):
    # `make test` installs it first; a missing browser is a failure, not a skip.
    assert os.path.exists(CHROMIUM), "needs Debian's chromium: run scripts/install_chromium.sh"
    report = tmp_path / "evaluation.html"
    page = render_html(result)
    report.write_text(page, encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _chromium("--dump-dom", probed.as_uri())
    assert dom.returncode == 0, dom.stderr[-3000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    assert 'data-images="4"' in body and 'data-decoded="4"' in body, body
    assert "data-errors" not in body, body

    screenshot = tmp_path / "evaluation.png"
    shot = _chromium(f"--screenshot={screenshot}", "--window-size=1200,2600",
                     "--hide-scrollbars", report.as_uri())
    assert shot.returncode == 0, shot.stderr[-3000:]
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), np.int32)
    assert pixels.shape[:2] == (2600, 1200)
    # Plots draw coloured lines and bars: plenty of saturated pixels, not a
    # blank or text-only page.
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 80).mean() > 0.01, (saturation > 80).mean()
    print(f"screenshot: {screenshot}")
