"""Load and soak: the exporter daemon against a 100-node lab, under 50 scrapers or for hours.

Run from the repository root: `.venv/bin/python -m bench.load_soak load` or
`.venv/bin/python -m bench.load_soak soak --duration 3600` (see bench/README.md).
"""
