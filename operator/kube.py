"""The Kubernetes client: configuration and the status writes handlers make."""
from __future__ import annotations

import asyncio
import os
from typing import Any, Optional

from kubernetes import client, config

from quartermaster.operator.models import GROUP, VERSION


def load(kubeconfig: Optional[str]) -> None:
    """In-cluster when running in a Pod without a kubeconfig, else the kubeconfig file."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config(config_file=kubeconfig)


async def patch_cluster_status(plural: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch a cluster-scoped object's status subresource (the operator never writes spec)."""
    await asyncio.to_thread(client.CustomObjectsApi().patch_cluster_custom_object_status,
                            GROUP, VERSION, plural, name, {"status": status})
