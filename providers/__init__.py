"""Actuators behind one narrow interface, discovered by entry points.

A provider plugin registers under the entry-point group `quartermaster.providers`
(`name = "package.module:Class"`); `load(name)` returns an instance. So far there are the
registry and the `NodePoolProvider` protocol in `quartermaster.providers.interface`, and
no provider: node-pool ones (kwok, AWS, GCP, Azure) and Kubernetes-native ones (HPA, VPA,
workload requests) are planned.
"""
from quartermaster.providers.registry import ENTRY_POINT_GROUP, UnknownProvider, available, load

__all__ = ["ENTRY_POINT_GROUP", "UnknownProvider", "available", "load"]
