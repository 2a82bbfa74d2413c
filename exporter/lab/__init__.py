"""A simulated CUCM cluster on loopback, for the demo and the tests.

The lab imports nothing from the rest of `exporter`: it plays the part of the network the
exporter watches, so it must not share the exporter's assumptions.
"""

from exporter.lab.cluster import Lab, LabNode, NodeState

__all__ = ["Lab", "LabNode", "NodeState"]
