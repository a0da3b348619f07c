"""VocabStatsGen: component.py, executor.py, config.py (the `vocab` settings)
and the Beam transforms only it uses."""
