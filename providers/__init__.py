"""Actuators behind one narrow interface, discovered by entry points.

A provider plugin registers under the entry-point group `quartermaster.providers`
(`name = "package.module:Class"`); `load(name, **options)` returns an instance. The
node-pool providers follow `NodePoolProvider` in `quartermaster.providers.interface`
(list pools, describe one, set its absolute desired size, list instance types with
prices; typed errors and a retry helper for the transient ones): `kwok` (fake Nodes on a
simulated cluster) and `aws` (Auto Scaling groups). `hpa` is the Kubernetes-native
actuator for a ScalingPolicy's replica bounds. See providers/README.md.
"""
from quartermaster.providers.registry import ENTRY_POINT_GROUP, UnknownProvider, available, load

__all__ = ["ENTRY_POINT_GROUP", "UnknownProvider", "available", "load"]
