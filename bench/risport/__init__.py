"""RisPort70 inventory of a 20,000-phone lab cluster against the SNMP walk of the same phones
(our SnmpProbe, and net-snmp's snmpbulkwalk). Run with `python -m bench.risport`."""
