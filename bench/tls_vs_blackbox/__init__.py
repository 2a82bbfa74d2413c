"""CPU per pinned-version TLS handshake: our probe against prometheus blackbox_exporter.

Run from the repository root: `.venv/bin/python -m bench.tls_vs_blackbox` (see bench/README.md).
"""
