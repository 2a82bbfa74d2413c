"""Scale benchmark: 1,000 CUCM nodes and 100,000 phones (see bench/README.md)."""
