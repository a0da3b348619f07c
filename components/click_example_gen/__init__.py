"""ClickExampleGen: component.py (what goes in and out), executor.py (the run),
config.py (the `ingestion` settings) and the pure modules only it uses."""
