"""The evaluation report: one self-contained HTML page from `metrics.json`.

Tables and matplotlib plots (PNG, base64-embedded, so the page needs no
server and no network): the blessing decision and why, recall@K of every
scorer under each protocol (fresh and frozen history), every metric of the
model next to each baseline under the blessing protocol, recall@K curves,
recall by history bucket, item popularity and item freshness, and the ANN
check (recall, latency).
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from models.channels.related import describe_source  # noqa: E402

METRIC_NAMES = ("recall", "precision", "f1", "map", "ndcg", "coverage")
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; }
.decision { padding: .6em 1em; border-radius: 4px; font-size: 1.2em; font-weight: bold; }
.blessed { background: #dff0d8; color: #1d5e1d; }
.not-blessed { background: #f8d7da; color: #7a1c24; }
li.fail { color: #7a1c24; font-weight: bold; } li.skipped { color: #666; }
img { max-width: 100%; } .note { color: #555; font-size: .9em; }
"""


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(figure, alt: str) -> str:
    return (f'<img class="plot" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{_png(figure)}">')


def _ks(result: dict) -> list[int]:
    return sorted(result["config"]["ks"])


def _metric_keys(result: dict) -> list[str]:
    return [f"{name}@{k}" for name in METRIC_NAMES for k in _ks(result)] + ["mrr"]


def metric_table(result: dict) -> str:
    """Rows: metrics; columns: scorers (best value per row in bold)."""
    scorers = list(result["metrics"])
    head = "".join(f"<th>{html.escape(s)}</th>" for s in scorers)
    rows = []
    for key in _metric_keys(result):
        values = [result["metrics"][s].get(key) for s in scorers]
        best = max(v for v in values if v is not None)
        cells = "".join(
            f'<td class="{"best" if v == best else ""}">{v:.4f}</td>' for v in values)
        rows.append(f"<tr><td>{key}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def recall_curve_plot(result: dict) -> str:
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, curve in result["recall_curves"].items():
        # Dashed: the last blessed model often overlaps the model.
        axis.plot(range(1, len(curve) + 1), curve, label=name,
                  linewidth=2.5 if name == "model" else 1.5,
                  linestyle="--" if name == "last_blessed" else "-")
    axis.set_xlabel("K")
    axis.set_ylabel("recall@K")
    axis.set_title("recall@K, full catalogue")
    axis.grid(alpha=.3)
    axis.legend()
    return _img(figure, "recall@K curves")


def breakdown_plot(result: dict, breakdown: str, groups: tuple[str, ...]) -> str:
    """Grouped bars: recall@blessing_k per group for every scorer."""
    key = f"recall@{result['config']['blessing_k']}"
    scorers = list(result["breakdowns"])
    figure, axis = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(scorers), 1)
    for i, scorer in enumerate(scorers):
        values = [result["breakdowns"][scorer].get(breakdown, {}).get(g, {}).get(key, 0.0)
                  for g in groups]
        axis.bar([g + i * width for g in range(len(groups))], values, width, label=scorer)
    counts = result["breakdowns"][scorers[0]].get(breakdown, {})
    axis.set_xticks([g + width * (len(scorers) - 1) / 2 for g in range(len(groups))])
    axis.set_xticklabels([f"{g}\n({counts.get(g, {}).get('num_examples', 0)} clicks)"
                          for g in groups])
    axis.set_ylabel(key)
    axis.set_title(f"{key} by {breakdown.replace('_', ' ')}")
    axis.legend(fontsize="small")
    return _img(figure, f"{key} by {breakdown}")


def ann_section(result: dict) -> str:
    ann = result.get("ann")
    if not ann:
        return "<p>No ANN check: the ScaNN and brute-force exports were not inputs.</p>"
    recall_key = next(k for k in ann if k.startswith("recall@"))
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.bar(["ScaNN vs exact"], [ann[recall_key]], color="tab:blue")
    left.axhline(result["config"]["min_ann_recall"], color="tab:red", linestyle="--",
                 label="min_ann_recall")
    left.set_ylim(0, 1.05)
    left.set_title(f"ANN {recall_key}")
    left.legend(fontsize="small")
    percentiles = ("p50", "p95", "p99")
    right.bar(percentiles, [ann[f"latency_ms_{p}"] for p in percentiles], color="tab:green")
    right.set_ylabel("ms")
    right.set_title("ScaNN export latency, 1 request/call")
    text = (f"<p>{recall_key} of the ScaNN export's answers against the brute-force export "
            f"over {ann['num_queries']} eval requests: <b>{ann[recall_key]:.4f}</b>; latency "
            + ", ".join(f"{p} {ann[f'latency_ms_{p}']:.2f} ms" for p in percentiles)
            + f" over {ann['latency_calls']} single-request calls (in process).</p>")
    return text + _img(figure, "ANN recall and latency")


def _checks(result: dict) -> str:
    items = []
    for check in result["checks"]:
        kind = ("skipped" if check["reason"].startswith("skipped")
                else "pass" if check["passed"] else "fail")
        items.append(f'<li class="{kind}">{html.escape(check["reason"])}</li>')
    return f"<ul>{''.join(items)}</ul>"


def _breakdown_table(result: dict, breakdown: str, groups: tuple[str, ...]) -> str:
    key = f"recall@{result['config']['blessing_k']}"
    scorers = list(result["breakdowns"])
    head = "".join(f"<th>{html.escape(s)}</th>" for s in scorers)
    rows = []
    for group in groups:
        stats = [result["breakdowns"][s].get(breakdown, {}).get(group, {}) for s in scorers]
        n = stats[0].get("num_examples", 0)
        cells = "".join(f"<td>{st.get(key, 0.0):.4f}</td>" for st in stats)
        rows.append(f"<tr><td>{group} ({n} clicks)</td>{cells}</tr>")
    return f"<table><tr><th>{key}</th>{head}</tr>{''.join(rows)}</table>"


def protocol_table(result: dict) -> str:
    """recall@blessing_k of every scorer under every protocol, and its ratio to
    the best baseline of the same protocol."""
    key = f"recall@{result['config']['blessing_k']}"
    protocols = result.get("protocols") or {result.get("protocol", "fresh"): result}
    scorers = list(next(iter(protocols.values()))["metrics"])
    head = "".join(f"<th>{html.escape(s)}</th>" for s in scorers)
    rows = []
    for name, values in protocols.items():
        metrics = values["metrics"]
        best = max((metrics[s][key] for s in ("popularity", "recent_popularity")
                    if s in metrics), default=0.0)
        cells = "".join(f"<td>{metrics[s][key]:.4f}</td>" for s in scorers)
        ratio = f"{metrics['model'][key] / best:.3f}x" if best else "-"
        marker = " (blessing)" if name == result.get("protocol") else ""
        rows.append(f"<tr><td>{html.escape(name)}{marker}</td>{cells}<td>{ratio}</td></tr>")
    return (f"<table><tr><th>{key}</th>{head}<th>model / best popularity</th></tr>"
            f"{''.join(rows)}</table>")


def channels_section(result: dict) -> str:
    """Each recall channel, the merge and the merge without each channel, per
    protocol, beside the model; then the merge weights chosen per bucket."""
    from models.topk_metrics import HISTORY_BUCKETS

    channels = result.get("channels")
    if not channels:
        return "<p>No recall channels: ChannelTrainer's output was not an input.</p>"
    key = f"recall@{result['config']['blessing_k']}"
    parts = []
    for protocol, rows in channels["protocols"].items():
        outcome = result["protocols"][protocol]
        metrics = {"model (merged)": outcome["metrics"]["model"], **rows["metrics"]}
        history = {"model (merged)": outcome["breakdowns"]["model"].get("history", {}),
                   **{name: b.get("history", {}) for name, b in rows["breakdowns"].items()}}
        recent = outcome["metrics"]["recent_popularity"][key]
        head = "".join(f"<th>{k}</th>" for k in ("recall@10", key, "ndcg@10")) + "".join(
            f"<th>{key}, {b}</th>" for b in HISTORY_BUCKETS)
        body = []
        for name, values in metrics.items():
            cells = "".join(f"<td>{values.get(k, 0.0):.4f}</td>"
                            for k in ("recall@10", key, "ndcg@10"))
            cells += "".join(f"<td>{history[name].get(b, {}).get(key, 0.0):.4f}</td>"
                             for b in HISTORY_BUCKETS)
            ratio = f"{values[key] / recent:.3f}x" if recent else "-"
            body.append(f"<tr><td>{html.escape(name)}</td>{cells}<td>{ratio}</td></tr>")
        parts.append(f"<h3>{html.escape(protocol)} history</h3><table><tr><th>list</th>{head}"
                     f"<th>/ recent popularity</th></tr>{''.join(body)}</table>")
    setting = channels["merge"]["merged"]["setting"]
    names = list(setting["weights"][HISTORY_BUCKETS[-1]])
    rows = "".join(
        f"<tr><td>{b}</td>" + "".join(
            f"<td>{setting['weights'][b][c]:g} / {setting['quotas'][b][c]}</td>" for c in names)
        + "</tr>" for b in HISTORY_BUCKETS)
    related = channels.get("related_items")
    if related:
        key = next(k for k in related if k.startswith("hit@"))
        source = describe_source(related.get("source", {}))
        parts.append(f"<h3>related_items</h3><p>Next click given the previous one, over "
                     f"{related['clicks']} eval clicks with a catalogue item in their history: "
                     f"{key} <b>{related[key]:.4f}</b> ({html.escape(source)}) "
                     f"against {related['cooccurrence_' + key]:.4f} for co-occurrence counts"
                     + (f" and {related['item_cf_' + key]:.4f} for item_cf's neighbours"
                        if 'item_cf_' + key in related else "") + ".</p>")
    parts.append("<h3>Merge: weight / quota per channel and history bucket</h3>"
                 "<table><tr><th>history</th>" + "".join(f"<th>{html.escape(c)}</th>"
                                                        for c in names)
                 + f"</tr>{rows}</table>")
    return "".join(parts)


def ranking_section(result: dict) -> str:
    """The ranker's pair metrics and how it was trained, or why there are none."""
    ranking = result.get("ranking")
    if not ranking:
        return "<p>No ranker: RankerTrainer's output was not an input (ranking.enabled).</p>"
    training = ranking.get("training") or {}
    rows = "".join(f"<tr><td>{html.escape(key)}</td><td>{html.escape(str(value))}</td></tr>"
                   for key, value in (("AUC", ranking["auc"]), ("log loss", ranking["log_loss"]),
                                      ("eval pairs", ranking["pairs"]),
                                      ("eval clicks", ranking["positives"]),
                                      ("re-ranked depth", ranking["rerank_depth"]),
                                      ("negatives from", training.get("negatives_from", "")),
                                      ("training loss by epoch",
                                       (training.get("train") or {}).get("loss", ""))))
    return f"<table>{rows}</table>"


def render_html(result: dict) -> str:
    """The whole report page for an `evaluation.evaluate` result with blessing."""
    from models.topk_metrics import HISTORY_BUCKETS, ITEM_FRESHNESS, POPULARITY_BUCKETS

    config = result["config"]
    blessed = result["blessed"]
    verdict = ("BLESSED: the model will be pushed" if blessed
               else "NOT BLESSED: the model will not be pushed")
    decision = f'<p class="decision {"blessed" if blessed else "not-blessed"}">{verdict}</p>'
    setup = (f"<p>{result['num_examples']} eval clicks; {result['num_candidates']} candidates "
             "(full catalogue, exact dot products); "
             + (f"the {result['exclude_history']} most recent history items of each click "
                "excluded" if result["exclude_history"] else "seen items not excluded")
             + f". Recent popularity: {html.escape(result.get('recent_popularity_source', ''))}."
             f" History buckets: none, short (1 to {config['short_history_max']} items), long."
             f" Item buckets: head = most clicked items with the first "
             f"{config['head_click_share']:g}"
             f" of training clicks, torso the next {config['torso_click_share']:g}, tail the "
             "rest.</p>")
    sources = (f"<p class=\"note\">model: {html.escape(result.get('model_is', ''))}, "
               f"{html.escape(str(result.get('model_uri')))}<br>"
               "last blessed model: "
               f"{html.escape(result.get('baseline_model_uri') or 'none (nothing blessed yet)')}"
               "</p>")
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Retrieval evaluation</title><style>{STYLE}</style></head><body>",
        "<h1>Two-tower retrieval: evaluation</h1>", decision,
        "<h2>Blessing checks</h2>", _checks(result), setup, sources,
        "<h2>Protocols</h2>",
        "<p class=\"note\">fresh: each eval click is a query with the user's whole history "
        "before it (real-time serving); frozen: the history as it stood when the eval period "
        "began, for every eval click of the user (recommendations computed at the cut-off). "
        "The blessing checks the protocol marked; the rest of the page shows it.</p>",
        protocol_table(result),
        "<h2>Metrics vs baselines</h2>",
        "<p class=\"note\">One clicked item per eval click: recall@K = hit rate@K; "
        "precision@K = hit/K; MAP@K, NDCG@K with one relevant item; MRR without cut-off; "
        "coverage@K = share of the catalogue in any top-K list.</p>",
        metric_table(result),
        "<h2>Recall@K curves</h2>", recall_curve_plot(result),
        "<h2>Item popularity buckets</h2>",
        breakdown_plot(result, "item_popularity", POPULARITY_BUCKETS),
        _breakdown_table(result, "item_popularity", POPULARITY_BUCKETS),
        "<h2>History of the query</h2>", breakdown_plot(result, "history", HISTORY_BUCKETS),
        _breakdown_table(result, "history", HISTORY_BUCKETS),
        "<h2>Items with and without training clicks</h2>",
        _breakdown_table(result, "item_freshness", ITEM_FRESHNESS),
        "<h2>ANN index check</h2>", ann_section(result),
        "<h2>Recall channels</h2>",
        "<p class=\"note\">Each channel ranks the full catalogue alone (two_tower: the "
        "towers); model (merged): their weighted reciprocal-rank fusion, what the exports "
        "serve, with the weights and quotas chosen per history bucket on this eval split's "
        "fresh-history clicks (so its figures here are in-sample); merged_without_X: the "
        "merge chosen again without channel X.</p>",
        channels_section(result),
        "<h2>Ranker</h2>",
        "<p class=\"note\">DeepFM over user, history, item, catalog tokens and popularity "
        "buckets. AUC and log loss: each eval click's item against negatives drawn as in "
        "training (retrieved from the merged list and sampled from the catalogue). "
        "reranked (in the metric tables): the model's list with its top re-ranked depth "
        "ordered by the ranker.</p>",
        ranking_section(result),
        "</body></html>",
    ]
    return "\n".join(parts)
