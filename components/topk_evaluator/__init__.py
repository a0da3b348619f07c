"""TopKEvaluator: component.py, executor.py, config.py (the `evaluation`
settings) and the modules only it uses; the ranking loop is `models.topk_metrics`."""
