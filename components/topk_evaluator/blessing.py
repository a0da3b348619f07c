"""The blessing rule: which checks a new model must pass to be pushed.

All checks look at recall@blessing_k on the same eval clicks:
  * min_recall: at least `min_recall`;
  * min_lift: more than `min_lift` x the strongest baseline in
    `lift_baselines` (by default both popularity baselines and a 2% margin:
    a model that only ties the best baseline, as a degenerate one does, is
    not blessed);
  * max_regression: at least (1 - `max_regression`) x the last blessed model's
    (skipped, and passed, when nothing was blessed before). The last blessed
    model is its towers: with recall channels, the model (the merged list) is
    not what they score, so the check compares like with like, the new
    two-tower channel against them;
  * min_ann_recall: the ScaNN export's recall@K against exact search at least
    `min_ann_recall` (skipped when no export was checked);
  * new_model: the model is not the last blessed model itself (a cached
    rerun on identical inputs hands the evaluator the model an earlier run
    blessed and pushed: blessing it again would push a second copy).
"""

from __future__ import annotations

from components.topk_evaluator.config import LAST_BLESSED, MODEL, EvaluationConfig


def _check(name: str, value: float, needed: float, text: str, strict: bool = False) -> dict:
    passed = value > needed if strict else value >= needed
    if strict:
        op = ">" if passed else "<="
    else:
        op = ">=" if passed else "<"
    return {"check": name, "passed": passed, "value": value, "threshold": needed,
            "reason": f"{'pass' if passed else 'FAIL'}: {text.format(op=op)}"}


def _skipped(name: str, why: str) -> dict:
    return {"check": name, "passed": True, "value": None, "threshold": None,
            "reason": f"skipped: {why}"}


def decide_blessing(result: dict, config: EvaluationConfig, ann: dict | None = None,
                    last_blessed_id: int | None = None) -> tuple[bool, list[dict]]:
    """Applies the blessing thresholds.

    Args:
      result: `evaluation.evaluate` output (metrics per scorer).
      config: the thresholds.
      ann: `ann_check` output, if the exports were checked.
      last_blessed_id: set when the model is the last blessed model (its
        MLMD artifact id): then it is not blessed again.

    Returns:
      (blessed, checks): each check is {"check", "passed", "value",
      "threshold", "reason"}; `reason` is one human-readable line.
    """
    key = f"recall@{config.blessing_k}"
    metrics = result["metrics"]
    model = metrics[MODEL][key]
    checks = [_check("min_recall", model, config.min_recall,
                     f"{key} {model:.4f} {{op}} min_recall {config.min_recall:.4f}")]
    if config.lift_baselines:
        best = max(config.lift_baselines, key=lambda name: metrics[name][key])
        best_value = metrics[best][key]
        checks.append(_check(
            "min_lift", model, config.min_lift * best_value,
            f"{key} {model:.4f} {{op}} {config.min_lift:g} x best baseline {best} "
            f"{best_value:.4f} (evaluation.min_lift)", strict=True))
    if LAST_BLESSED in metrics:
        last = metrics[LAST_BLESSED][key]
        towers = (((result.get("channels") or {}).get("protocols") or {})
                  .get(result.get("protocol"), {}).get("metrics", {}).get("two_tower"))
        subject, value = (("two-tower channel ", towers[key]) if towers else ("", model))
        checks.append(_check(
            "max_regression", value, (1 - config.max_regression) * last,
            f"{subject}{key} {value:.4f} {{op}} (1 - {config.max_regression:g}) x last blessed "
            f"model {last:.4f}"))
    else:
        checks.append(_skipped("max_regression", "no blessed model to compare with yet"))
    ann_key = next((k for k in (ann or {}) if k.startswith("recall@")), None)
    if ann_key:
        checks.append(_check(
            "min_ann_recall", ann[ann_key], config.min_ann_recall,
            f"ANN {ann_key} {ann[ann_key]:.4f} {{op}} min_ann_recall "
            f"{config.min_ann_recall:.4f}"))
    else:
        checks.append(_skipped("min_ann_recall", "no ScaNN export to check"))
    if last_blessed_id is not None:
        checks.append({"check": "new_model", "passed": False, "value": None, "threshold": None,
                       "reason": f"FAIL: the model is the last blessed model (artifact "
                                 f"{last_blessed_id}), reused from an earlier run on the same "
                                 "inputs: it was pushed then"})
    return all(c["passed"] for c in checks), checks
