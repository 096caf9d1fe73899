"""The operator's settings: one typed object, set from the command line (`quartermaster run`)."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class OperatorSettings(BaseModel):
    resync_seconds: float = Field(default=60.0, gt=0, description="Re-reconcile at least this often.")
    debounce_seconds: float = Field(default=1.0, ge=0, description="Coalesce bursts of cluster changes.")
    liveness_port: Optional[int] = Field(default=None, ge=1, le=65535)
    liveness_host: str = Field(default="0.0.0.0", description="The address /healthz listens on.")
    peering: Optional[str] = Field(default=None, description="Kopf peering name; None runs standalone.")


# Set once by the CLI before Kopf starts; handlers read it.
current = OperatorSettings()
