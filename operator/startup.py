"""Kopf's own settings, applied at operator start-up."""
from __future__ import annotations

import kopf

from quartermaster.operator.models import GROUP


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    # Kopf's bookkeeping goes in our own annotations; status belongs to the resources'
    # schemas (which would prune Kopf's fields) and spec to the user.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Resources are discovered once at start-up: the chart installs the CRDs first, and
    # watching CustomResourceDefinitions would need a permission the operator has no use for.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
