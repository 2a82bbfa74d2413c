"""Prometheus exporter for Cisco CUCM phone-directory health around TLS hardening changes."""

__version__ = "0.1.0"
