"""IndexBuilder: component.py and executor.py; the exports are `models.serving_export`."""
