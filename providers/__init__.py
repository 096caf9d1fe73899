"""Actuators behind one narrow interface, discovered by entry points.

A provider plugin registers under the entry-point group `quartermaster.providers`
(`name = "package.module:Class"`); `load(name)` returns an instance. Node-pool providers
(kwok, AWS, GCP, Azure) and Kubernetes-native ones (HPA, VPA, workload requests) implement
the protocols in `quartermaster.providers.interface`.
"""
from quartermaster.providers.registry import ENTRY_POINT_GROUP, UnknownProvider, available, load

__all__ = ["ENTRY_POINT_GROUP", "UnknownProvider", "available", "load"]
