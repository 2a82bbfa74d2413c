"""Our SNMP inventory walk of a 20,000-phone table against net-snmp's snmpbulkwalk.

Run from the repository root: `.venv/bin/python -m bench.snmp_walk` (see bench/README.md).
"""
