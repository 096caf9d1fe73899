"""metav1.LabelSelector matching, as the apiserver defines it."""
from __future__ import annotations

from typing import Mapping, Optional

from quartermaster.operator.models import LabelSelector


def matches(selector: Optional[LabelSelector], labels: Mapping[str, str]) -> bool:
    """An absent or empty selector matches everything."""
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        value = labels.get(requirement.key)
        if requirement.operator == "In" and not (present and value in requirement.values):
            return False
        if requirement.operator == "NotIn" and present and value in requirement.values:
            return False
        if requirement.operator == "Exists" and not present:
            return False
        if requirement.operator == "DoesNotExist" and present:
            return False
    return True
