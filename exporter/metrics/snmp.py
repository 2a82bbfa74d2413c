"""Node state from CISCO-CCM-MIB and the cost of reading it: cucm_node_*, cucm_snmp_*.

cucm_node_registered_phones{cluster="lab",node="cucm-pub"} 101.0
cucm_node_boot_time_seconds{cluster="lab",node="cucm-pub"} 1.7e+09
cucm_snmp_poll_requests{cluster="lab",node="cucm-pub"} 3.0
"""

from __future__ import annotations

from exporter.metrics.freshness import Freshness
from exporter.metrics.gauges import GaugeFamilies
from exporter.results import ProbeRun, SnmpProbeResult

__all__ = ["SnmpFamilies"]

NODE = ["cluster", "node"]


class SnmpFamilies(GaugeFamilies):
    def __init__(self, freshness: Freshness) -> None:
        super().__init__(freshness, "snmp", NODE)

        self.registered = self.gauge(
            "cucm_node_registered_phones", "ccmRegisteredPhones: phones registered to the node."
        )
        self.unregistered = self.gauge(
            "cucm_node_unregistered_phones", "ccmUnregisteredPhones of the node."
        )
        self.rejected = self.gauge("cucm_node_rejected_phones", "ccmRejectedPhones of the node.")
        self.boot_time = self.gauge(
            "cucm_node_boot_time_seconds",
            "When the node's SNMP agent started (unix time, from sysUpTime); a jump means the "
            "node restarted.",
        )
        self.start_time = self.gauge(
            "cucm_node_callmanager_start_time_seconds",
            "When the node's Cisco CallManager service started (ccmCallManagerStartTime).",
        )
        self.walked = self.gauge(
            "cucm_snmp_phone_table_walk_timestamp_seconds",
            "When ccmPhoneTable was last walked; it is walked only when ccmPhoneTableStateId or "
            "the CallManager start time changed.",
        )
        self.requests = self.gauge(
            "cucm_snmp_poll_requests", "SNMP requests the last poll of the node sent."
        )

    def add_run(self, run: ProbeRun) -> None:
        poll = run.result
        if not isinstance(poll, SnmpProbeResult):
            return
        labels = [run.cluster, run.node]
        self.requests.add_metric(labels, float(poll.requests))
        if poll.walked_at is not None:
            self.walked.add_metric(labels, poll.walked_at)
        scalars = poll.scalars
        if scalars is None:
            return
        self.registered.add_metric(labels, float(scalars.registered))
        self.unregistered.add_metric(labels, float(scalars.unregistered))
        self.rejected.add_metric(labels, float(scalars.rejected))
        self.boot_time.add_metric(labels, scalars.boot_time)
        if scalars.callmanager_start is not None:
            self.start_time.add_metric(labels, scalars.callmanager_start)
