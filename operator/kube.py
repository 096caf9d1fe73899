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


async def patch_status(plural: str, name: str, status: dict[str, Any],
                       namespace: Optional[str] = None) -> None:
    """Merge-patch the status subresource (the operator never writes spec)."""
    api = client.CustomObjectsApi()
    body = {"status": status}
    if namespace is None:
        await asyncio.to_thread(api.patch_cluster_custom_object_status, GROUP, VERSION, plural, name, body)
    else:
        await asyncio.to_thread(api.patch_namespaced_custom_object_status, GROUP, VERSION,
                                namespace, plural, name, body)
