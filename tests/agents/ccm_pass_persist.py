"""A net-snmp `pass_persist` handler serving CISCO-CCM-MIB rows from a JSON file.

snmpd does the SNMP (v2c and v3 USM, in C, independent of our code); this script only answers
its get/getnext questions on stdin (see snmpd.conf(5), "pass_persist"). Stdlib only: snmpd runs
it with the system python3. The data file is a sorted list of [oid, type, value] rows.
"""

from __future__ import annotations

import bisect
import json
import sys


def main(path: str) -> None:
    with open(path, encoding="utf-8") as data:
        rows = json.load(data)
    keys = [tuple(int(p) for p in oid.strip(".").split(".")) for oid, _, _ in rows]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    keys = [keys[i] for i in order]
    rows = [rows[i] for i in order]

    def answer(index: int) -> None:
        oid, kind, value = rows[index]
        sys.stdout.write(f"{oid}\n{kind}\n{value}\n")

    while True:
        command = sys.stdin.readline().strip()
        if not command:
            return
        if command == "PING":
            sys.stdout.write("PONG\n")
        elif command in ("get", "getnext"):
            oid = tuple(int(p) for p in sys.stdin.readline().strip().strip(".").split("."))
            if command == "get":
                index = bisect.bisect_left(keys, oid)
                found = index < len(keys) and keys[index] == oid
            else:
                index = bisect.bisect_right(keys, oid)
                found = index < len(keys)
            if found:
                answer(index)
            else:
                sys.stdout.write("NONE\n")
        elif command == "set":
            sys.stdin.readline()
            sys.stdin.readline()
            sys.stdout.write("not-writable\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
