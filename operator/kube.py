"""The Kubernetes client: one shared ApiClient, and every write handlers make
(status patches and Events)."""
from __future__ import annotations

import asyncio
import functools
from typing import Any

from kubernetes import client

from quartermaster.operator.models import GROUP, VERSION


@functools.cache
def api_client() -> client.ApiClient:
    """One client (one connection pool, one TLS session per connection) for the process.

    Built on first use, from the default configuration as it is then: after Kopf's login
    (through the kubernetes client: in-cluster, else the kubeconfig) has filled it. It is always called from the event loop's thread,
    so no two threads race to build it; urllib3's pool is safe to share with the worker
    threads the calls run in. Credentials that expire are refreshed by the configuration's
    own hook on each request.
    """
    return client.ApiClient()


async def patch_status(plural: str, name: str, namespace: str | None, status: dict[str, Any]) -> None:
    """Merge-patch an object's status subresource (the operator never writes spec)."""
    api = client.CustomObjectsApi(api_client())
    body = {"status": status}
    if namespace is None:
        await asyncio.to_thread(api.patch_cluster_custom_object_status, GROUP, VERSION, plural, name, body)
    else:
        await asyncio.to_thread(api.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, plural,
                                name, body)


async def create_event(event: client.CoreV1Event) -> None:
    """File a core/v1 Event in its metadata's namespace."""
    api = client.CoreV1Api(api_client())
    await asyncio.to_thread(api.create_namespaced_event, event.metadata.namespace, event)
