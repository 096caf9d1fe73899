"""Provider discovery through package entry points."""
from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "quartermaster.providers"


class UnknownProvider(LookupError):
    pass


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load(name: str, **options):
    """An instance of the provider registered as `name`, built with `options`."""
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        raise UnknownProvider(f"no provider named {name!r}; installed: {', '.join(available()) or 'none'}")
    return matches[0].load()(**options)
