"""RetrievalTrainer: component.py and executor.py; the training itself is `models.trainer`."""
