"""Every Kopf handler of the operator; importing this module registers them."""
from quartermaster.operator import cluster_index, quota, resourcepool, runner, scalingpolicy, startup, swapplan  # noqa: F401
