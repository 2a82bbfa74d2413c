"""What the configuration says of each node: cucm_node_info.

Rules and dashboards build the HTTP directory workaround URL from `host`, never from the
`node` label (a configured name, not necessarily resolvable by phones).

    cucm_node_info{cluster="lab",node="cucm-pub",host="cucm-pub.example.com",address="10.0.0.1"} 1
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.config import ClusterConfig

__all__ = ["node_info_family"]


def node_info_family(clusters: Iterable[ClusterConfig]) -> Metric:
    family = GaugeMetricFamily(
        "cucm_node_info",
        "1 for each configured node, labeled with the host name phones and the HTTP "
        "directory service use, and the address the exporter connects to.",
        labels=["cluster", "node", "host", "address"],
    )
    for cluster in clusters:
        for node in cluster.nodes:
            family.add_metric([cluster.name, node.name, node.host, node.connect_address], 1.0)
    return family
